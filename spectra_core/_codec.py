"""The stored entries' fast decoding, generated from the attrs models.

msgspec parses an entry's JSON into structs that this module derives from the attrs
classes of :mod:`spectra_core.models` (one struct per class that sits in a union: entry
kinds, message roles, content blocks, tagged as in the JSON), checking every type in C;
classes outside unions (``Usage``, ``ModelRef``) msgspec builds itself. A builder
generated per struct then makes the model object, storing the fields as given without
``__init__``: msgspec already checked what the models' validators check.

Nothing here is written by hand per kind: a field added to a model is decoded with it.
Input the structs refuse (an unknown kind, a number where a string belongs) raises one of
:data:`MISMATCH`; :mod:`spectra_core.serde` then takes the cattrs path, which converts
it or says what is wrong.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs
import msgspec

from .models import ENTRY_TYPES, Entry

__all__ = ["MISMATCH", "decode_entry", "decode_entry_lines", "decode_record_lines"]

#: Raised by the decoders for input the structs refuse.
MISMATCH = (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError)

_TAGS = ("type", "role")
_structs: dict[type[Any], type[msgspec.Struct]] = {}  # model class -> its struct
_builders: dict[type[msgspec.Struct], Callable[[Any], Any]] = {}  # struct -> builder


def _tag(cls: type[Any]) -> tuple[str, str] | None:
    """The (field, value) a tagged model class carries in its JSON form, or None."""
    for name in _TAGS:
        value = cls.__dict__.get(name)
        if isinstance(value, str):
            return name, value
    return None


def _wire(hint: Any) -> Any:
    """The type msgspec decodes for a model field typed ``hint``."""
    if isinstance(hint, type) and attrs.has(hint) and _tag(hint) is not None:
        return _struct(hint)
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        wired = tuple(_wire(a) for a in args)
        return hint if wired == args else functools.reduce(operator.or_, wired)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _wire(args[0])
        return hint if item is args[0] else tuple[item, ...]  # type: ignore[valid-type]
    return hint


def _struct(cls: type[Any]) -> type[msgspec.Struct]:
    """The struct of the tagged attrs class ``cls`` (made once), and its builder."""
    if cls in _structs:
        return _structs[cls]
    tag = _tag(cls)
    assert tag is not None, cls
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, Any, Any]] = []
    plan: list[tuple[str, str]] = []
    for f in attrs.fields(cls):
        wire = _wire(hints[f.name])
        if f.default is attrs.NOTHING:
            fields.append((f.name, wire, msgspec.NODEFAULT))
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            fields.append((f.name, wire, msgspec.field(default_factory=f.default.factory)))
        else:
            fields.append((f.name, wire, f.default))
        plan.append((f.name, _build_expr(f"w.{f.name}", hints[f.name], wire)))
    struct = msgspec.defstruct(
        f"_{cls.__name__}Wire",
        fields,
        tag_field=tag[0],
        tag=tag[1],
        kw_only=True,
        gc=False,
    )
    _structs[cls] = struct
    _builders[struct] = _make_builder(cls, plan)
    return struct


def _build_expr(value: str, hint: Any, wire: Any) -> str:
    """Python code that turns the decoded ``value`` of type ``wire`` into the model's."""
    if wire is hint:
        return value
    if typing.get_origin(wire) is tuple:
        return f"tuple([_build[type(v)](v) for v in {value}])"
    return f"_build[type({value})]({value})"


def _make_builder(cls: type[Any], plan: list[tuple[str, str]]) -> Callable[[Any], Any]:
    """``build(w)``: a ``cls`` holding the fields of the struct ``w``, stored as given
    (one slot store per field, without ``__init__``; the field order is attrs')."""
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_build": _builders}
    lines = ["def build(w):", "    obj = _new(_cls)"]
    for name, expr in plan:
        scope[f"_set_{name}"] = getattr(cls, name).__set__  # the slot's descriptor
        lines.append(f"    _set_{name}(obj, {expr})")
    lines.append("    return obj")
    exec("\n".join(lines), scope)
    return scope["build"]  # type: ignore[no-any-return]


_Entry: Any = functools.reduce(operator.or_, [_struct(c) for c in ENTRY_TYPES])
_decoder = msgspec.json.Decoder(_Entry)


def decode_entry(data: str | bytes) -> Entry:
    """The entry whose JSON is ``data``, or one of :data:`MISMATCH`."""
    wire = _decoder.decode(data)
    return _builders[type(wire)](wire)  # type: ignore[no-any-return]


def decode_entry_lines(data: bytes | memoryview) -> list[Entry]:
    """The entries of newline-delimited JSON, one per line, or one of :data:`MISMATCH`."""
    build = _builders
    return [build[type(w)](w) for w in _decoder.decode_lines(data)]


@functools.cache
def _record_decoder(key: str) -> msgspec.json.Decoder[Any]:
    record = msgspec.defstruct("_Record", [(key, _Entry | None, None)], gc=False)
    return msgspec.json.Decoder(record)


def decode_record_lines(data: bytes | memoryview, key: str) -> list[Entry | None]:
    """For each line of newline-delimited JSON objects, the entry under ``key`` (None
    where there is none), or one of :data:`MISMATCH`."""
    build = _builders
    get = operator.attrgetter(key)
    out: list[Entry | None] = []
    for record in _record_decoder(key).decode_lines(data):
        w = get(record)
        out.append(None if w is None else build[type(w)](w))
    return out
