"""Structuring option tables with cattrs, every error at its key path.

A value that fails to structure, and a value that a converter or validator refuses, are
both reported as ``"$.store.ttl: message"`` lines, with the closest valid key for an
unknown one. Used by :mod:`spectra_core.config` (the whole file) and by sections that
other modules read (``[agents.<name>]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

from .durations import Duration, parse_duration
from .plugins import closest

__all__ = ["options_converter", "structure_options"]

T = TypeVar("T")


def _strict(expected: type[Any], label: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if not ok:
            raise TypeError(f"expected {label}, got {value!r} ({type(value).__name__})")
        return value

    return structure


def _float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r} ({type(value).__name__})")
    return float(value)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook(Duration, lambda v, _: parse_duration(v))
    conv.register_structure_hook(Path, lambda v, _: Path(_strict(str, "a path")(v, None)))
    conv.register_structure_hook_factory(attrs.has, lambda cls: _keyed(conv, cls))
    return conv


def _keyed(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    """cattrs' structuring of an attrs class, except that a converter or validator that
    refuses a value is reported at its key (``$.store.schema``), not at the table, and
    together with the keys that failed to structure."""
    base = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)

    def structure(value: Any, _: Any) -> Any:
        try:
            return base(value, cls)
        except cattrs.ClassValidationError as group:
            refusals = _refusals(conv, cls, value)
            if not refusals:
                raise
            # what cattrs named stays; an error of cls(...) itself becomes the refusals
            kept = [
                e
                for e in group.exceptions
                if _keyed_note(e) is not None or isinstance(e, ForbiddenExtraKeysError)
            ]
            raise cattrs.ClassValidationError(
                f"While structuring {cls.__name__}", _in_field_order(cls, kept + refusals), cls
            ) from None
        except (ValueError, TypeError):  # the same, without detailed validation
            refusals = _refusals(conv, cls, value)
            if not refusals:
                raise
            raise cattrs.ClassValidationError(
                f"While structuring {cls.__name__}", refusals, cls
            ) from None

    return structure


def _keyed_note(exc: BaseException) -> AttributeValidationNote | None:
    notes = getattr(exc, "__notes__", ())
    return next((n for n in notes if isinstance(n, AttributeValidationNote)), None)


def _in_field_order(cls: type[Any], errors: list[Exception]) -> list[Exception]:
    order = {f.alias or f.name: i for i, f in enumerate(attrs.fields(cls))}

    def rank(exc: Exception) -> int:
        note = _keyed_note(exc)
        return order.get(str(note.name), len(order)) if note is not None else len(order)

    return sorted(errors, key=rank)


def _refusals(conv: cattrs.Converter, cls: type[Any], value: Any) -> list[Exception]:
    """The values given for ``cls`` that structure but that their converter or validator
    refuses, each noted at its key."""
    if not isinstance(value, Mapping):
        return []
    refusals: list[Exception] = []
    for field in attrs.fields(attrs.resolve_types(cls)):
        key = field.alias or field.name
        if not field.init or key not in value:
            continue
        try:
            v = conv.structure(value[key], field.type)
        except Exception:
            continue  # reported by cattrs at its key
        try:
            if field.converter is not None:
                v = field.converter(v)
            if field.validator is not None:
                field.validator(None, field, v)
        except Exception as refused:
            refused.__notes__ = [
                AttributeValidationNote(f"Structuring class {cls.__qualname__} @ {key}", key, v)
            ]
            refusals.append(refused)
    return refusals


options_converter = _make_converter()


def _format(exc: BaseException, typ: type[Any] | None) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        parts = []
        for key in sorted(exc.extra_fields):
            guess = closest(key, known)
            hint = f"; did you mean {guess!r}?" if guess else ""
            parts.append(f"unknown key {key!r}{hint}")
        if known:
            parts.append(f"(valid keys: {', '.join(known)})")
        return " ".join(parts)
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return _message(exc)
    return format_exception(exc, typ)


def _message(exc: BaseException) -> str:
    """The text of ``exc``: attrs' validators raise ``ValueError(text, attribute, ...)``."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _structure(value: Any, cls: type[T], path: str) -> tuple[T | None, list[str]]:
    """Structure ``value`` into ``cls``; errors as ``"$.path: message"`` lines."""
    try:
        return options_converter.structure(value, cls), []
    except (cattrs.ClassValidationError, cattrs.IterableValidationError) as exc:
        lines = cattrs.transform_error(exc, path=path, format_exception=_format)
        return None, [_path_first(line) for line in lines]
    except (ValueError, TypeError) as exc:
        return None, [f"{path}: {exc}"]


def _path_first(line: str) -> str:
    """cattrs says ``"message @ $.path"``; we say ``"$.path: message"``."""
    message, sep, path = line.rpartition(" @ ")
    return f"{path}: {message}" if sep else line


def structure_options(value: Any, cls: type[T], path: str) -> tuple[T | None, list[str]]:
    """Structure a config table into the attrs class ``cls`` as backends' options are:
    the object, or None and one ``"$.path: message"`` line per problem."""
    return _structure(value, cls, path)
