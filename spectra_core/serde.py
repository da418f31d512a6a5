"""The stored form of the data model: one codec, derived from the attrs models.

``entry_to_dict`` / ``entry_from_dict``, ``session_to_dict`` / ``session_from_dict`` turn
the model into JSON-compatible dicts and back with a cattrs converter (which also
structures configuration); msgspec writes and parses the JSON text. Stores read entries
back with ``entry_from_json`` (one) and ``entries_from_json_lines`` (many, in one call):
msgspec parses them into structs generated from the models (:mod:`spectra_core._codec`),
which give what ``entry_from_dict`` gives, several times faster. Entries of an unknown
``type`` become :class:`~spectra_core.models.OpaqueEntry` and are written back unchanged.

The form is versioned: :data:`FORMAT_VERSION`, which stores record next to what they
write (see docs/sessions.md, "Stored format").
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs
import cattrs
import msgspec
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.preconf.json import make_converter

from ._codec import MISMATCH, decode_entry, decode_entry_lines, decode_record_lines
from .errors import StoreError
from .models import (
    ENTRY_TYPES,
    AssistantContent,
    AssistantMessage,
    ContentBlock,
    Entry,
    ForkOrigin,
    ImageContent,
    Message,
    OpaqueEntry,
    Session,
    SessionConfig,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    UserContent,
    UserMessage,
)

__all__ = [
    "FORMAT_VERSION",
    "bulk_decoding",
    "converter",
    "dumps",
    "entries_from_json_lines",
    "entry_from_dict",
    "entry_from_json",
    "entry_records_from_json_lines",
    "entry_to_dict",
    "entry_to_json",
    "header_from_dict",
    "header_texts",
    "header_to_dict",
    "loads",
    "session_from_dict",
    "session_to_dict",
]

#: Version of the JSON form written by this release; stores record it.
FORMAT_VERSION = 1

converter = make_converter()
for _cls in (
    TextContent,
    ThinkingContent,
    ToolCall,
    ImageContent,
    UserMessage,
    AssistantMessage,
    ToolResultMessage,
    *ENTRY_TYPES,
    OpaqueEntry,
):
    attrs.resolve_types(_cls)

_BLOCKS: dict[str, type[Any]] = {
    c.type: c for c in (TextContent, ThinkingContent, ToolCall, ImageContent)
}
_MESSAGES: dict[str, type[Any]] = {
    c.role: c for c in (UserMessage, AssistantMessage, ToolResultMessage)
}
_ENTRIES: dict[str, type[Any]] = {c.type: c for c in ENTRY_TYPES}
_ENTRY_BASE_KEYS = ("id", "parent_id", "timestamp")


def _tagged(tag: str, classes: Mapping[str, type[Any]], what: str) -> None:
    """Register hooks that write ``tag`` into each class's dict and dispatch on it."""
    structure: dict[str, Callable[[Any, Any], Any]] = {}
    for name, cls in classes.items():
        unstructure = make_dict_unstructure_fn(cls, converter)

        def add_tag(obj: Any, _u: Any = unstructure, _n: str = name) -> dict[str, Any]:
            return {tag: _n, **_u(obj)}

        converter.register_unstructure_hook(cls, add_tag)
        structure[name] = make_dict_structure_fn(cls, converter)

    def dispatch(value: Any, _: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"{what} must be an object, got {type(value).__name__}")
        kind = value.get(tag)
        fn = structure.get(kind) if isinstance(kind, str) else None
        if fn is None:
            raise ValueError(f"unknown {what} {tag} {kind!r}")
        return fn(value, None)

    for union in _UNIONS[what]:
        converter.register_structure_hook(union, dispatch)


_UNIONS: dict[str, tuple[Any, ...]] = {
    "content block": (ContentBlock, UserContent, AssistantContent),
    "message": (Message,),
}
_tagged("type", _BLOCKS, "content block")
_tagged("role", _MESSAGES, "message")

_entry_structure = {name: make_dict_structure_fn(cls, converter) for name, cls in _ENTRIES.items()}
_entry_unstructure = {cls: make_dict_unstructure_fn(cls, converter) for cls in _ENTRIES.values()}


def entry_to_dict(entry: Entry) -> dict[str, Any]:
    """The JSON-compatible form of an entry, with its kind in ``type``."""
    if isinstance(entry, OpaqueEntry):
        return {
            "type": entry.kind,
            "id": entry.id,
            "parent_id": entry.parent_id,
            "timestamp": entry.timestamp.isoformat(),
            **entry.data,
        }
    return {"type": entry.type, **_entry_unstructure[type(entry)](entry)}


def entry_to_json(entry: Entry) -> str:
    """``dumps(entry_to_dict(entry))``: the text a store writes for an entry."""
    return dumps(entry_to_dict(entry))


def _why(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return str(exc) or type(exc).__name__


def entry_from_dict(data: Mapping[str, Any]) -> Entry:
    """Rebuild an entry; an unknown ``type`` gives an :class:`OpaqueEntry`."""
    kind = data.get("type")
    fn = _entry_structure.get(kind) if isinstance(kind, str) else None
    if fn is not None:
        try:
            return fn(data, None)  # type: ignore[no-any-return]
        except (cattrs.BaseValidationError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"malformed {kind} entry {data.get('id')!r}: {_why(exc)}") from None
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"entry has no 'type': {dict(data)!r:.200}")
    rest = {k: v for k, v in data.items() if k not in ("type", *_ENTRY_BASE_KEYS)}
    return OpaqueEntry(
        id=converter.structure(data["id"], str),
        parent_id=converter.structure(data.get("parent_id"), str | None),  # type: ignore[arg-type]
        timestamp=converter.structure(data["timestamp"], datetime),
        kind=kind,
        data=rest,
    )


_SESSION_TYPES: dict[str, Any] = {
    name: a.type for name, a in attrs.fields_dict(attrs.resolve_types(Session)).items()
}
_HEADER_FIELDS = tuple(
    a.name for a in attrs.fields(Session) if a.name not in ("entries", "_saved_count", "_index")
)


_header_hooks: list[tuple[str, Callable[[Any], Any]]] = []


def header_to_dict(session: Session) -> dict[str, Any]:
    """The session without its entries (what stores keep as the session's header)."""
    if not _header_hooks:  # looked up once, on first use: every save calls this
        _header_hooks.extend(
            (n, converter.get_unstructure_hook(_SESSION_TYPES[n])) for n in _HEADER_FIELDS
        )
    return {name: hook(getattr(session, name)) for name, hook in _header_hooks}


def header_texts(session: Session) -> tuple[str, str, str | None, str]:
    """``(created_at, updated_at, forked_from, config)`` of the header as text: the
    timestamps as :func:`header_to_dict` writes them, the fork origin (``None``: not a
    fork) and the config as :func:`dumps` writes their dicts. The values SQL stores keep
    in text columns, without building the whole header dict on every save."""
    forked = session.forked_from
    return (
        _datetime_text(session.created_at),
        _datetime_text(session.updated_at),
        None if forked is None else dumps(converter.unstructure(forked, ForkOrigin)),
        dumps(converter.unstructure(session.config, SessionConfig)),
    )


_datetime_text = converter.get_unstructure_hook(datetime)


def header_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Structured header fields, ready to pass to ``Session(**fields, entries=...)``."""
    missing = [n for n in ("id", "created_at", "updated_at") if n not in data]
    if missing:
        raise ValueError(f"session header lacks {', '.join(missing)}")
    return {
        name: converter.structure(data[name], _SESSION_TYPES[name])
        for name in _HEADER_FIELDS
        if name in data
    }


def session_to_dict(session: Session) -> dict[str, Any]:
    """The whole session as a JSON-compatible dict."""
    return {**header_to_dict(session), "entries": [entry_to_dict(e) for e in session.entries]}


def session_from_dict(data: Mapping[str, Any]) -> Session:
    """Rebuild a session; all its entries count as saved."""
    entries = [entry_from_dict(e) for e in data.get("entries", ())]
    return Session(**header_from_dict(data), entries=entries, saved_count=len(entries))


@contextmanager
def bulk_decoding() -> Iterator[None]:
    """Pause the cyclic garbage collector while a load decodes many entries, and collect
    the youngest generation once when it ends.

    Every object a load builds stays alive (it is part of the session), so collections
    in the middle find nothing to free and only walk the heap again and again (a full
    one on a big heap costs more than the load). The one collection at the end walks the
    new objects once, as their first collection would anyway, but now inside the load
    rather than in whatever runs next. Nothing happens if collection was off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)


_json_decoder = msgspec.json.Decoder()


def loads(data: str | bytes) -> Any:
    """Parse JSON text (str or UTF-8 bytes) as ``json.loads`` does, faster (msgspec)."""
    try:
        return _json_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # NaN, Infinity and numbers beyond a double's range are JSON that ``json``
        # writes and reads but msgspec refuses: the standard library decides (and
        # reports what is wrong with text that is no JSON at all)
        return json.loads(data)


def entry_from_json(data: str | bytes) -> Entry:
    """Parse and rebuild one entry from its JSON text: the hot path of a store's load.

    Text in the form spectra writes is parsed by msgspec straight into the generated
    structs (:mod:`spectra_core._codec`); anything else takes the way of
    ``entry_from_dict(loads(data))``, which converts what cattrs converts and raises
    ValueError (``json.JSONDecodeError`` for text that is no JSON) for the rest.
    """
    try:
        return decode_entry(data)
    except MISMATCH:
        pass
    obj = loads(data)
    if not isinstance(obj, dict):
        raise ValueError(f"an entry must be a JSON object, got {type(obj).__name__}")
    return entry_from_dict(obj)


def entries_from_json_lines(data: bytes | memoryview) -> list[Entry]:
    """The entries of newline-delimited JSON, one per line, decoded in one call (a
    store's load: cheaper than :func:`entry_from_json` line by line).

    All or nothing: ValueError if any line is not an entry in the form spectra writes
    (a kind this release does not know included). Decode line by line then, with
    :func:`entry_from_json`, which converts what it can and names what it cannot.
    """
    try:
        return decode_entry_lines(data)
    except MISMATCH as exc:
        raise ValueError(f"not every line is an entry as spectra writes it: {exc}") from None


def entry_records_from_json_lines(data: bytes | memoryview, key: str) -> list[Entry | None]:
    """Like :func:`entries_from_json_lines`, for lines that are JSON objects holding an
    entry under ``key`` (other fields are ignored): the entry of each line, or None for
    a line without ``key``."""
    try:
        return decode_record_lines(data, key)
    except MISMATCH as exc:
        raise ValueError(f"not every line is a record as spectra writes it: {exc}") from None


_encoder = msgspec.json.Encoder()


def dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 kept as-is, written by msgspec (a float that is not
    finite is written as null: the models refuse those before anything is stored).

    :class:`~spectra_core.StoreError` for a value that is not JSON (another type, text
    with a lone surrogate)."""
    try:
        return _encoder.encode(value).decode()
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"value is not JSON-serializable: {exc}") from exc
