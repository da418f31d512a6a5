"""The hot path of a save: an entry's JSON text, written by msgspec.

:func:`entry_json` returns exactly the text ``dumps(entry_to_dict(entry))`` returns (a
hypothesis test compares them byte for byte), about 5x faster, for the entries a
conversation is made of: messages with text, thinking, image and tool-call blocks,
compactions, labels; :func:`config_json` does the same for a session's config, which
every save writes too. It builds the dict by hand and lets msgspec write it.

It is only taken where both writers are known to agree: every string a ``str``, every
integer a plain ``int`` of 64 bits, free-form values (tool arguments) made of those,
booleans, None, lists and str-keyed dicts. ``json`` and msgspec write floats
differently (``1e+16`` against ``1e16``), so a float anywhere, a subclass, a timestamp
that is not a ``datetime``, or any other kind of entry returns ``None``, and the caller
takes the cattrs path, which writes what it always wrote (or raises what it raised).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from .models import (
    AssistantMessage,
    CompactionEntry,
    Entry,
    ImageContent,
    LabelEntry,
    MessageEntry,
    ModelRef,
    SessionConfig,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)

__all__ = ["config_json", "entry_json", "plain_json"]

_encode = msgspec.json.Encoder().encode
_MIN, _MAX = -(2**63), 2**63 - 1


class _Refused(Exception):
    """The entry holds something only the cattrs path writes the same as before."""


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Refused
    return value


def _opt_str(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise _Refused
    return value


def _int(value: Any) -> int:
    if type(value) is not int or not _MIN <= value <= _MAX:
        raise _Refused
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Refused
    return value


def _plain(value: Any) -> Any:
    """``value`` if it is JSON both writers write alike (no floats), else _Refused."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise _Refused
            tv = type(v)
            if tv is not str and v is not None and tv is not bool:  # strings etc. inline
                _plain_item(v)
    elif t is list or t is tuple:
        for v in value:
            tv = type(v)
            if tv is not str and v is not None and tv is not bool:
                _plain_item(v)
    else:
        _plain_item(value)
    return value


def _plain_dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Refused
    return _plain(value)  # type: ignore[no-any-return]


def _plain_item(v: Any) -> None:
    # scalars are checked here, without a call each; containers recurse
    t = type(v)
    if t is str or v is None or t is bool:
        return
    if t is int:
        if not _MIN <= v <= _MAX:
            raise _Refused
    elif t is dict or t is list or t is tuple:
        _plain(v)
    else:
        raise _Refused


def _block(b: Any) -> dict[str, Any]:
    t = type(b)
    if t is TextContent:
        text = b.text
        if type(text) is not str:
            raise _Refused
        return {"type": "text", "text": text}
    if t is ThinkingContent:
        return {
            "type": "thinking",
            "thinking": _str(b.thinking),
            "signature": _opt_str(b.signature),
        }
    if t is ToolCall:
        return {
            "type": "tool_call",
            "id": _str(b.id),
            "name": _str(b.name),
            "arguments": _plain_dict(b.arguments),
        }
    if t is ImageContent:
        return {"type": "image", "data": _str(b.data), "mime_type": _str(b.mime_type)}
    raise _Refused


def _blocks(content: Any) -> list[dict[str, Any]]:
    if type(content) is not tuple:
        raise _Refused
    out = []
    for b in content:  # (a loop, not a comprehension: one call fewer per message)
        out.append(_block(b))
    return out


def _usage(u: Any) -> dict[str, int] | None:
    if u is None:
        return None
    if type(u) is not Usage:
        raise _Refused
    counts = (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)
    for n in counts:
        if type(n) is not int or not _MIN <= n <= _MAX:
            raise _Refused
    return {
        "input_tokens": counts[0],
        "output_tokens": counts[1],
        "cache_read_tokens": counts[2],
        "cache_write_tokens": counts[3],
    }


def _opt_strs(*values: Any) -> None:
    for value in values:
        if value is not None and type(value) is not str:
            raise _Refused


def _message(m: Any) -> dict[str, Any]:
    t = type(m)
    if t is UserMessage:
        return {"role": "user", "content": _blocks(m.content)}
    if t is AssistantMessage:
        model, provider, stop, error = m.model, m.provider, m.stop_reason, m.error_message
        _opt_strs(model, provider, stop, error)
        return {
            "role": "assistant",
            "content": _blocks(m.content),
            "model": model,
            "provider": provider,
            "usage": _usage(m.usage),
            "stop_reason": stop,
            "error_message": error,
        }
    if t is ToolResultMessage:
        return {
            "role": "tool_result",
            "tool_call_id": _str(m.tool_call_id),
            "tool_name": _str(m.tool_name),
            "content": _blocks(m.content),
            "is_error": _bool(m.is_error),
        }
    raise _Refused


def _base(kind: str, e: Any) -> dict[str, Any]:
    entry_id, parent_id, timestamp = e.id, e.parent_id, e.timestamp
    if (
        type(entry_id) is not str
        or (parent_id is not None and type(parent_id) is not str)
        or type(timestamp) is not datetime
    ):
        raise _Refused
    return {
        "type": kind,
        "id": entry_id,
        "parent_id": parent_id,
        "timestamp": timestamp.isoformat(),
    }


def _entry_dict(e: Entry) -> dict[str, Any]:
    t = type(e)
    if t is MessageEntry:
        out = _base("message", e)
        out["message"] = _message(e.message)  # type: ignore[union-attr]
        return out
    if t is CompactionEntry:
        out = _base("compaction", e)
        out["summary"] = _str(e.summary)  # type: ignore[union-attr]
        out["first_kept_entry_id"] = _str(e.first_kept_entry_id)  # type: ignore[union-attr]
        out["tokens_before"] = _int(e.tokens_before)  # type: ignore[union-attr]
        return out
    if t is LabelEntry:
        out = _base("label", e)
        out["target_id"] = _str(e.target_id)  # type: ignore[union-attr]
        out["label"] = _opt_str(e.label)  # type: ignore[union-attr]
        return out
    raise _Refused


def _model(m: Any) -> dict[str, Any] | None:
    if m is None:
        return None
    if type(m) is not ModelRef:
        raise _Refused
    return {
        "id": _str(m.id),
        "provider": _opt_str(m.provider),
        "name": _opt_str(m.name),
        "api": _opt_str(m.api),
        "options": _plain_dict(m.options),
    }


def _config_dict(c: Any) -> dict[str, Any]:
    if type(c) is not SessionConfig:
        raise _Refused
    return {
        "model": _model(c.model),
        "system_prompt": _opt_str(c.system_prompt),
        "metadata": _plain_dict(c.metadata),
    }


def _written(to_json: Callable[[Any], Any], value: Any) -> str | None:
    """msgspec's text of ``to_json(value)``, or None where either refuses it."""
    try:
        return _encode(to_json(value)).decode()
    except (_Refused, UnicodeEncodeError, OverflowError, TypeError):
        return None


def entry_json(entry: Entry) -> str | None:
    """The entry's JSON text as ``dumps(entry_to_dict(entry))`` writes it, or ``None``
    where only that path is known to write it so (see the module docstring)."""
    return _written(_entry_dict, entry)


def config_json(config: SessionConfig) -> str | None:
    """The config's JSON text as ``dumps(converter.unstructure(config))`` writes it, or
    ``None`` where only that path is known to write it so."""
    return _written(_config_dict, config)


def plain_json(value: Any) -> str | None:
    """``value``'s compact JSON text as ``json`` writes it (``ensure_ascii=False``), or
    ``None`` unless ``value`` is made only of what both writers write alike."""
    return _written(_plain, value)
