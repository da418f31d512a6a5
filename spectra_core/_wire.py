"""The entries' JSON form as msgspec types: the hot path of a store's load.

msgspec parses an entry's JSON straight into these structs, checking every type in C
(about twice as fast as parsing into dicts); ``build()`` turns one into the model
object, through constructors that skip ``__init__``. Tags select the kind (``type``) of
an entry and of a content block, and the ``role`` of a message, as in the JSON.

The structs are strict where cattrs converts (a number where a string belongs, an
unknown kind or block): :func:`decode_entry` raises one of :data:`MISMATCH` then, and
the caller takes the cattrs path of :mod:`spectra_core.serde`, which converts such
input or says what is wrong. Unknown keys are ignored, as cattrs ignores them.
Timestamps are read by msgspec's RFC 3339 parser, which gives what
``datetime.fromisoformat`` gives for every timestamp spectra writes (it also takes a
lowercase ``t`` and ``z``, which ``fromisoformat`` refuses). ``tests/test_serde_wire.py``
checks with hypothesis that both paths agree, on well-formed and on damaged input.
"""

from __future__ import annotations

import functools
import operator
import os
import typing
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import msgspec

from .models import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    CustomEntry,
    CustomMessageEntry,
    Entry,
    ImageContent,
    LabelEntry,
    MessageEntry,
    ModelChangeEntry,
    ModelRef,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)

__all__ = ["COMPILED", "MISMATCH", "decode_entry", "decode_entry_lines", "decode_record_lines"]

#: Raised by :func:`decode_entry` for input the structs refuse.
MISMATCH = (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError)


def _plain_fields(cls: type[Any]) -> list[str]:
    """The field names of the frozen attrs class ``cls``, which may be built without
    ``__init__``; TypeError if its ``__init__`` does more than store the fields:
    validators, ``__attrs_pre_init__`` / ``__attrs_post_init__``, or slots that are not
    fields (a cached hash). A field's converter is skipped too: the structs hand over
    the converted form (tuples of blocks)."""
    fields = attrs.fields(cls)
    names = [f.name for f in fields]
    slots = {s for c in cls.__mro__ for s in getattr(c, "__slots__", ())} - {"__weakref__"}
    if (
        hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or any(f.validator for f in fields)
        or slots != set(names)
    ):
        raise TypeError(f"{cls.__name__} validates or post-processes: build it with __init__")
    return names


def _builder(cls: type[Any]) -> Callable[..., Any]:
    """A constructor for the frozen attrs class ``cls`` that takes every field
    positionally and stores it as given, skipping ``__init__`` (about half its cost);
    see :func:`_plain_fields` for the classes it refuses."""
    names = _plain_fields(cls)
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})  # slot descriptors
    body = "".join(f"    _set_{n}(obj, {n})\n" for n in names)
    exec(f"def build({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n", scope)
    return scope["build"]  # type: ignore[no-any-return]


_new_text = _builder(TextContent)
_new_thinking = _builder(ThinkingContent)
_new_tool_call = _builder(ToolCall)
_new_image = _builder(ImageContent)
_new_user = _builder(UserMessage)
_new_assistant = _builder(AssistantMessage)
_new_tool_result = _builder(ToolResultMessage)
_new_message_entry = _builder(MessageEntry)
_new_audit = _builder(AuditEntry)
_new_model_change = _builder(ModelChangeEntry)
_new_custom = _builder(CustomEntry)
_new_custom_message = _builder(CustomMessageEntry)
_new_compaction = _builder(CompactionEntry)
_new_label = _builder(LabelEntry)


# --- content blocks ---------------------------------------------------------------------


class _Text(msgspec.Struct, gc=False, tag_field="type", tag="text"):
    text: str

    def build(self) -> TextContent:
        return _new_text(self.text)  # type: ignore[no-any-return]


class _Thinking(msgspec.Struct, gc=False, tag_field="type", tag="thinking"):
    thinking: str
    signature: str | None = None

    def build(self) -> ThinkingContent:
        return _new_thinking(self.thinking, self.signature)  # type: ignore[no-any-return]


class _ToolCall(msgspec.Struct, gc=False, tag_field="type", tag="tool_call"):
    id: str
    name: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)

    def build(self) -> ToolCall:
        return _new_tool_call(self.id, self.name, self.arguments)  # type: ignore[no-any-return]


class _Image(msgspec.Struct, gc=False, tag_field="type", tag="image"):
    data: str
    mime_type: str

    def build(self) -> ImageContent:
        return _new_image(self.data, self.mime_type)  # type: ignore[no-any-return]


_Block = _Text | _Thinking | _ToolCall | _Image


def _blocks(blocks: list[_Block]) -> tuple[Any, ...]:
    # text blocks, by far the most common, are built here rather than by a call each
    return tuple([_new_text(b.text) if type(b) is _Text else b.build() for b in blocks])


# --- messages ---------------------------------------------------------------------------


class _User(msgspec.Struct, gc=False, tag_field="role", tag="user"):
    content: list[_Block]

    def build(self) -> UserMessage:
        return _new_user(_blocks(self.content))  # type: ignore[no-any-return]


class _Assistant(msgspec.Struct, gc=False, tag_field="role", tag="assistant"):
    content: list[_Block]
    model: str | None = None
    provider: str | None = None
    usage: Usage | None = None  # a plain attrs class: msgspec builds it itself
    stop_reason: str | None = None
    error_message: str | None = None

    def build(self) -> AssistantMessage:
        return _new_assistant(  # type: ignore[no-any-return]
            _blocks(self.content),
            self.model,
            self.provider,
            self.usage,
            self.stop_reason,
            self.error_message,
        )


class _ToolResult(msgspec.Struct, gc=False, tag_field="role", tag="tool_result"):
    tool_call_id: str
    tool_name: str
    content: list[_Block]
    is_error: bool = False

    def build(self) -> ToolResultMessage:
        return _new_tool_result(  # type: ignore[no-any-return]
            self.tool_call_id, self.tool_name, _blocks(self.content), self.is_error
        )


# --- entries ----------------------------------------------------------------------------


class _Base(msgspec.Struct, gc=False, tag_field="type", kw_only=True):
    id: str
    parent_id: str | None
    timestamp: datetime


class _MessageEntry(_Base, tag="message"):
    message: _User | _Assistant | _ToolResult

    def build(self) -> MessageEntry:
        m = self.message
        # the most common message, built here rather than by one more call
        message = _new_user(_blocks(m.content)) if type(m) is _User else m.build()
        return _new_message_entry(  # type: ignore[no-any-return]
            self.id, self.parent_id, self.timestamp, message
        )


class _AuditEntry(_Base, tag="audit"):
    event_type: str
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    def build(self) -> AuditEntry:
        return _new_audit(  # type: ignore[no-any-return]
            self.id, self.parent_id, self.timestamp, self.event_type, self.details
        )


class _ModelChangeEntry(_Base, tag="model_change"):
    model: ModelRef  # a plain attrs class: msgspec builds it itself

    def build(self) -> ModelChangeEntry:
        return _new_model_change(  # type: ignore[no-any-return]
            self.id, self.parent_id, self.timestamp, self.model
        )


class _CustomEntry(_Base, tag="custom"):
    custom_type: str
    data: Any = None

    def build(self) -> CustomEntry:
        return _new_custom(  # type: ignore[no-any-return]
            self.id, self.parent_id, self.timestamp, self.custom_type, self.data
        )


class _CustomMessageEntry(_Base, tag="custom_message"):
    custom_type: str
    content: list[_Block]
    display: bool = True
    details: Any = None

    def build(self) -> CustomMessageEntry:
        return _new_custom_message(  # type: ignore[no-any-return]
            self.id,
            self.parent_id,
            self.timestamp,
            self.custom_type,
            _blocks(self.content),
            self.display,
            self.details,
        )


class _CompactionEntry(_Base, tag="compaction"):
    summary: str
    first_kept_entry_id: str
    tokens_before: int = 0

    def build(self) -> CompactionEntry:
        return _new_compaction(  # type: ignore[no-any-return]
            self.id,
            self.parent_id,
            self.timestamp,
            self.summary,
            self.first_kept_entry_id,
            self.tokens_before,
        )


class _LabelEntry(_Base, tag="label"):
    target_id: str
    label: str | None

    def build(self) -> LabelEntry:
        return _new_label(  # type: ignore[no-any-return]
            self.id, self.parent_id, self.timestamp, self.target_id, self.label
        )


_Entry = (
    _MessageEntry
    | _AuditEntry
    | _ModelChangeEntry
    | _CustomEntry
    | _CustomMessageEntry
    | _CompactionEntry
    | _LabelEntry
)
_decoder = msgspec.json.Decoder(_Entry)


# --- the compiled builders (optional) ---------------------------------------------------

#: Each struct and the model class it builds, for the compiled builders.
_TARGETS: tuple[tuple[type[msgspec.Struct], type[Any]], ...] = (
    (_MessageEntry, MessageEntry),
    (_User, UserMessage),
    (_Assistant, AssistantMessage),
    (_Text, TextContent),
    (_ToolResult, ToolResultMessage),
    (_ToolCall, ToolCall),
    (_Thinking, ThinkingContent),
    (_Image, ImageContent),
    (_AuditEntry, AuditEntry),
    (_ModelChangeEntry, ModelChangeEntry),
    (_CustomEntry, CustomEntry),
    (_CustomMessageEntry, CustomMessageEntry),
    (_CompactionEntry, CompactionEntry),
    (_LabelEntry, LabelEntry),
)
_WIRE_TYPES = {wire for wire, _ in _TARGETS}


def _kind(fast: Any, wire: type[Any], field: msgspec.structs.FieldInfo) -> int:
    """How the compiled builder carries ``field`` over: as it is, built, or as a tuple
    of built blocks. A field holding structs in any other way is refused."""
    if field.type == list[_Block]:
        return fast.TUPLE  # type: ignore[no-any-return]
    if field.type == _User | _Assistant | _ToolResult:
        return fast.ONE  # type: ignore[no-any-return]
    if _WIRE_TYPES & set(_mentioned(field.type)):
        raise TypeError(f"{wire.__name__}.{field.name}: structs in a {field.type} field")
    return fast.COPY  # type: ignore[no-any-return]


def _mentioned(hint: Any) -> list[Any]:
    return [hint, *(t for arg in typing.get_args(hint) for t in _mentioned(arg))]


def _compiled() -> Any:
    """``spectra_core._fastbuild`` with a plan for every struct, or ``None``: it is not
    compiled, ``SPECTRA_PURE_PYTHON`` is set, or it refused a plan (with a warning).
    Both builders give equal objects (``tests/test_fastbuild.py``)."""
    if os.environ.get("SPECTRA_PURE_PYTHON"):
        return None
    try:
        from . import _fastbuild  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        for wire, cls in _TARGETS:
            names = _plain_fields(cls)
            fields = msgspec.structs.fields(wire)
            if sorted(names) != sorted(f.name for f in fields):
                raise TypeError(f"{wire.__name__} and {cls.__name__} have other fields")
            plan = tuple((f.name, f.name, _kind(_fastbuild, wire, f)) for f in fields)
            _fastbuild.register(wire, cls, plan)
    except (TypeError, ValueError) as exc:
        warnings.warn(
            f"spectra_core._fastbuild is not used ({exc}): entries are built in Python",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return _fastbuild


def _build_python(wire: Any) -> Any:
    return None if wire is None else wire.build()


def _build_list_python(wires: list[Any]) -> list[Any]:
    return [None if wire is None else wire.build() for wire in wires]


_fast = _compiled()
#: Whether loads build entries with the compiled builders (``spectra_core._fastbuild``,
#: compiled when spectra-core is installed; off without a C compiler or with
#: ``SPECTRA_PURE_PYTHON=1``); the Python builders make the same objects, slower.
COMPILED = _fast is not None
_build: Callable[[Any], Any] = _build_python if _fast is None else _fast.build
_build_list: Callable[[list[Any]], list[Any]] = (
    _build_list_python if _fast is None else _fast.build_list
)


def decode_entry(data: str | bytes) -> Entry:
    """The entry whose JSON is ``data``, or one of :data:`MISMATCH`."""
    return _build(_decoder.decode(data))  # type: ignore[no-any-return]


def decode_entry_lines(data: bytes | memoryview) -> list[Entry]:
    """The entries of newline-delimited JSON, one per line, or one of :data:`MISMATCH`."""
    return _build_list(_decoder.decode_lines(data))


@functools.cache
def _record_decoder(key: str) -> tuple[msgspec.json.Decoder[Any], Callable[[Any], Any]]:
    record = msgspec.defstruct("_Record", [(key, _Entry | None, None)], gc=False)
    return msgspec.json.Decoder(record), operator.attrgetter(key)


def decode_record_lines(data: bytes | memoryview, key: str) -> list[Entry | None]:
    """For each line of newline-delimited JSON objects, the entry under ``key`` (None
    where there is none), or one of :data:`MISMATCH`."""
    decoder, get = _record_decoder(key)
    return _build_list(list(map(get, decoder.decode_lines(data))))
