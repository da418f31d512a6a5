"""attrs validators of the data model: what a store can keep and give back unchanged.

Each raises :class:`~spectra_core.InvalidArgumentError` naming the class and field
(``MessageEntry.message``), so a malformed entry is refused when it is made, before it
joins a session or reaches a store. A value passes only if the stored form gives it
back equal and of the same type: text without lone surrogates (UTF-8 cannot hold
them), integers that are not booleans, finite floats, lists (a tuple would come back a
list), objects with text keys (an int key would come back a string).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from .errors import InvalidArgumentError

__all__ = [
    "MAX_DEPTH",
    "blocks_of",
    "instance",
    "json_object",
    "json_problem",
    "json_value",
    "optional",
    "text",
    "timestamp",
]

#: How deeply lists and objects may nest in a free-form value.
MAX_DEPTH = 100

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _where(inst: Any, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(inst).__name__}.{attribute.name}"


def _refuse(inst: Any, attribute: attrs.Attribute[Any], why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{_where(inst, attribute)} {why}")


def _no_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A ``str`` that UTF-8 can hold."""
    if not isinstance(value, str):
        raise _refuse(inst, attribute, f"must be a string, got {type(value).__name__}")
    if not _no_surrogates(value):
        raise _refuse(inst, attribute, "holds a lone surrogate, which UTF-8 cannot store")


def instance(*kinds: type[Any]) -> Validator:
    """An instance of one of ``kinds`` (``int`` excludes ``bool``)."""
    names = " or ".join(k.__name__ for k in kinds)

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise _refuse(inst, attribute, f"must be {names}, got {type(value).__name__}")

    return check


def optional(check: Validator) -> Validator:
    """None, or what ``check`` accepts."""

    def maybe(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(inst, attribute, value)

    return maybe


def blocks_of(*kinds: type[Any]) -> Validator:
    """A tuple of content blocks, each an instance of one of ``kinds``."""
    names = ", ".join(k.__name__ for k in kinds)

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        for i, block in enumerate(value):
            if not isinstance(block, kinds):
                raise _refuse(
                    inst, attribute, f"[{i}] must be a content block ({names}), got {block!r:.80}"
                )

    return check


def json_problem(value: Any) -> str | None:
    """What makes ``value`` unfit for the stored form, or None (iterative: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        v, path, depth = stack.pop()
        if v is None or isinstance(v, bool | int):
            continue
        if isinstance(v, str):
            if not _no_surrogates(v):
                return f"{path or 'it'} holds a lone surrogate, which UTF-8 cannot store"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return f"{path or 'it'} is {v}, which JSON cannot hold"
        elif isinstance(v, list | dict):
            if depth >= MAX_DEPTH:
                return f"{path or 'it'} nests deeper than {MAX_DEPTH} levels"
            if isinstance(v, list):
                stack.extend((x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v))
                continue
            for k, x in v.items():
                if not isinstance(k, str):
                    return f"{path or 'it'} has a key {k!r} that is not a string"
                if not _no_surrogates(k):
                    return f"{path or 'it'} has a key with a lone surrogate"
                stack.append((x, f"{path}[{k!r}]", depth + 1))
        else:
            return (
                f"{path or 'it'} is a {type(v).__name__}, not a JSON value "
                "(None, bool, int, finite float, str, list, dict with str keys)"
            )
    return None


def json_value(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A value the stored form gives back unchanged (see the module docstring)."""
    problem = json_problem(value)
    if problem is not None:
        raise _refuse(inst, attribute, f"must be JSON-compatible: {problem}")


def json_object(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A ``dict`` with text keys whose values pass :func:`json_value`."""
    if not isinstance(value, dict):
        raise _refuse(inst, attribute, f"must be a dict, got {type(value).__name__}")
    json_value(inst, attribute, value)


timestamp = instance(datetime)
