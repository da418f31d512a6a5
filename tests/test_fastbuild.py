"""The compiled builders (``spectra_core._fastbuild``) make the objects the Python
builders make, refuse plans they cannot carry out, and hold no reference too many."""

from __future__ import annotations

import gc
import sys
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serde_wire import finite_entries

from spectra_core import _wire
from spectra_core.models import Entry
from spectra_core.serde import dumps, entry_to_dict

fast: Any = pytest.importorskip(
    "spectra_core._fastbuild", reason="spectra_core._fastbuild is not compiled here"
)

pytestmark = pytest.mark.skipif(
    not _wire.COMPILED, reason="SPECTRA_PURE_PYTHON is set: the compiled builders are off"
)


def _same(a: Any, b: Any) -> None:
    """Equal and of the same types all the way down (== alone would take a list for a
    tuple of blocks)."""
    assert type(a) is type(b)
    assert a == b
    if attrs.has(type(a)):
        for field in attrs.fields(type(a)):
            _same(getattr(a, field.name), getattr(b, field.name))
    elif isinstance(a, list | tuple):
        for x, y in zip(a, b, strict=True):
            _same(x, y)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite_entries, max_size=5))
def test_compiled_and_python_builders_make_the_same_entries(batch: list[Entry]) -> None:
    data = b"".join(dumps(entry_to_dict(e)).encode() + b"\n" for e in batch)
    wires = _wire._decoder.decode_lines(data)
    compiled = fast.build_list(wires)
    python = _wire._build_list_python(wires)
    _same(compiled, python)
    _same(compiled, batch)
    for wire, entry in zip(wires, batch, strict=True):
        _same(fast.build(wire), entry)


def test_records_without_an_entry_stay_none() -> None:
    assert fast.build(None) is None
    assert fast.build_list([None]) == [None]


def test_a_struct_without_a_plan_is_built_by_its_build_method() -> None:
    class Other(msgspec.Struct):
        n: int

        def build(self) -> str:
            return f"built {self.n}"

    assert fast.build_list([Other(1), Other(2)]) == ["built 1", "built 2"]
    with pytest.raises(AttributeError):
        fast.build(object())


@attrs.frozen
class Point:
    x: Any
    y: Any


class _Point(msgspec.Struct):
    x: Any
    y: Any


class _Line(msgspec.Struct):
    points: list[_Point]


@attrs.frozen
class Line:
    points: tuple[Point, ...]


def test_a_plan_builds_nested_structs_and_tuples() -> None:
    fast.register(_Point, Point, (("x", "x", fast.COPY), ("y", "y", fast.COPY)))
    fast.register(_Line, Line, (("points", "points", fast.TUPLE),))
    line = fast.build(_Line([_Point(1, 2), _Point("a", None)]))
    _same(line, Line((Point(1, 2), Point("a", None))))
    # a second plan for the same struct replaces the first
    fast.register(_Point, Point, (("x", "y", fast.COPY), ("y", "x", fast.COPY)))
    assert fast.build(_Point(1, 2)) == Point(2, 1)
    with pytest.raises(TypeError, match="expected a list of structs, got tuple"):
        fast.build(_Line((_Point(1, 2),)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a list of structs, got tuple"):
        fast.build_list((_Point(1, 2),))


def test_a_failing_nested_build_frees_what_was_built() -> None:
    class Boom(msgspec.Struct):
        def build(self) -> None:
            raise RuntimeError("boom")

    fast.register(_Line, Line, (("points", "points", fast.TUPLE),))
    marker = object()
    fast.register(_Point, Point, (("x", "x", fast.COPY), ("y", "y", fast.COPY)))
    before = sys.getrefcount(marker)
    with pytest.raises(RuntimeError, match="boom"):
        fast.build(_Line([_Point(marker, marker), Boom()]))  # type: ignore[list-item]
    gc.collect()
    assert sys.getrefcount(marker) == before


def test_building_holds_no_extra_reference() -> None:
    text = "a text shared by every entry"
    wires = [_wire._Text(text) for _ in range(1000)]
    before = sys.getrefcount(text)
    built = fast.build_list(wires)
    assert sys.getrefcount(text) == before + 1000
    del built
    assert sys.getrefcount(text) == before


@attrs.frozen
class Three:
    a: int


class _WithProperty(msgspec.Struct):
    a: int

    @property
    def b(self) -> int:
        return self.a


class _Foreign:
    """A slot descriptor of another class: writing at its offset would corrupt memory."""

    __slots__ = ("z",)
    a = Point.__dict__["x"]


@pytest.mark.parametrize(
    ("src", "dst", "spec", "error", "match"),
    [
        (_WithProperty, Three, (("b", "a", 0),), TypeError, "_WithProperty.b is not a slot"),
        (_WithProperty, Three, (("a", "nope", 0),), AttributeError, "nope"),
        (_WithProperty, Three, (("a", "a", 7),), ValueError, "unknown kind 7"),
        (_WithProperty, int, (("a", "real", 0),), TypeError, "not a plain class of slots"),
        (_WithProperty, Three, (("a", "a"),), TypeError, "register"),
        (_WithProperty, Three, tuple(("a", "a", 0) for _ in range(17)), ValueError, "at most"),
        (_WithProperty, _Point, (("a", "x", 0),), TypeError, "not a plain class of slots"),
        (_WithProperty, _Foreign, (("a", "a", 0),), TypeError, "_Foreign.a is a slot of another"),
    ],
)
def test_register_refuses_what_it_cannot_carry_out(
    src: type, dst: type, spec: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        fast.register(src, dst, spec)


def test_every_struct_has_a_plan_that_matches_the_python_builder() -> None:
    # the plans _wire registered: every wire struct type, and no field carried as-is
    # that holds structs
    assert {wire for wire, _ in _wire._TARGETS} == set(_wire._Entry.__args__) | {
        _wire._User,
        _wire._Assistant,
        _wire._ToolResult,
        *_wire._Block.__args__,
    }
