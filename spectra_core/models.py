"""The session data model: content blocks, messages, entries and the session itself.

Entries are frozen; a :class:`Session` is the mutable aggregate that a
:class:`~spectra_core.SessionManager` appends to and a store persists.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

import attrs

from ._checks import instance, json_object, json_value, optional, text, timestamp
from ._messages import (  # re-exported: spectra_core.models is their public path
    AssistantContent,
    AssistantMessage,
    ContentBlock,
    ImageContent,
    Message,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserContent,
    UserMessage,
    _blocks,
    _user_blocks,
)
from .errors import EntryNotFoundError

__all__ = [
    "AssistantContent",
    "AssistantMessage",
    "AuditEntry",
    "CompactionEntry",
    "ContentBlock",
    "CustomEntry",
    "CustomMessageEntry",
    "Entry",
    "ForkOrigin",
    "ImageContent",
    "LabelEntry",
    "Message",
    "MessageEntry",
    "ModelChangeEntry",
    "ModelRef",
    "OpaqueEntry",
    "PartialLoad",
    "Session",
    "SessionConfig",
    "TextContent",
    "ThinkingContent",
    "ToolCall",
    "ToolResultMessage",
    "Usage",
    "UserContent",
    "UserMessage",
]


# --- session configuration ------------------------------------------------------------


@attrs.frozen
class ModelRef:
    """Which model to call: its id, and the provider backend that serves it."""

    id: str = attrs.field(validator=text)
    provider: str | None = attrs.field(default=None, validator=optional(text))
    name: str | None = attrs.field(default=None, validator=optional(text))
    api: str | None = attrs.field(default=None, validator=optional(text))
    options: dict[str, Any] = attrs.field(factory=dict, validator=json_object)


@attrs.define
class SessionConfig:
    """Per-session settings: the model, the system prompt and free-form metadata."""

    model: ModelRef | None = attrs.field(default=None, validator=optional(instance(ModelRef)))
    system_prompt: str | None = attrs.field(default=None, validator=optional(text))
    metadata: dict[str, Any] = attrs.field(factory=dict, validator=json_object)


@attrs.frozen
class PartialLoad:
    """Marks a session loaded with only the end of its active branch.

    ``first_entry_id`` is the first loaded entry; ``model`` is the model in force there
    (from a model change before the cut), so the context is the same as in a full load.
    """

    first_entry_id: str | None
    model: ModelRef | None = None


@attrs.frozen
class ForkOrigin:
    """Provenance of a forked session: the source session and the entry it was cut at."""

    session_id: str = attrs.field(validator=text)
    entry_id: str | None = attrs.field(validator=optional(text))


# --- entries --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _EntryBase:
    id: str = attrs.field(validator=text)
    parent_id: str | None = attrs.field(validator=optional(text))
    timestamp: datetime = attrs.field(validator=timestamp)


@attrs.frozen(kw_only=True)
class MessageEntry(_EntryBase):
    """A user, assistant or tool-result message."""

    message: Message = attrs.field(
        validator=instance(UserMessage, AssistantMessage, ToolResultMessage)
    )
    type: ClassVar[str] = "message"


@attrs.frozen(kw_only=True)
class ModelChangeEntry(_EntryBase):
    """From here on the branch talks to ``model``."""

    model: ModelRef = attrs.field(validator=instance(ModelRef))
    type: ClassVar[str] = "model_change"


@attrs.frozen(kw_only=True)
class AuditEntry(_EntryBase):
    """Something that happened to the session (run started, rate limited, forked...)."""

    event_type: str = attrs.field(validator=text)
    details: dict[str, Any] = attrs.field(factory=dict, validator=json_object)
    type: ClassVar[str] = "audit"


@attrs.frozen(kw_only=True)
class CustomEntry(_EntryBase):
    """Application data kept in the tree but never sent to the model."""

    custom_type: str = attrs.field(validator=text)
    data: Any = attrs.field(default=None, validator=json_value)
    type: ClassVar[str] = "custom"


@attrs.frozen(kw_only=True)
class CustomMessageEntry(_EntryBase):
    """Application content that is sent to the model as a user message."""

    custom_type: str = attrs.field(validator=text)
    content: tuple[UserContent, ...] = attrs.field(converter=_blocks, validator=_user_blocks)
    display: bool = attrs.field(default=True, validator=instance(bool))
    details: Any = attrs.field(default=None, validator=json_value)
    type: ClassVar[str] = "custom_message"


@attrs.frozen(kw_only=True)
class CompactionEntry(_EntryBase):
    """Replaces the path before ``first_kept_entry_id`` with ``summary`` in the context."""

    summary: str = attrs.field(validator=text)
    first_kept_entry_id: str = attrs.field(validator=text)
    tokens_before: int = attrs.field(default=0, validator=instance(int))
    type: ClassVar[str] = "compaction"


@attrs.frozen(kw_only=True)
class LabelEntry(_EntryBase):
    """A bookmark on ``target_id`` (``label=None`` clears it)."""

    target_id: str = attrs.field(validator=text)
    label: str | None = attrs.field(validator=optional(text))
    type: ClassVar[str] = "label"


@attrs.frozen(kw_only=True)
class OpaqueEntry(_EntryBase):
    """An entry of a kind this version does not know (written by a newer version).

    It is kept as-is, round-trips unchanged and is never sent to the model.
    """

    kind: str = attrs.field(validator=text)
    data: dict[str, Any] = attrs.field(factory=dict, validator=json_object)
    type: ClassVar[str] = "opaque"


Entry: TypeAlias = (
    MessageEntry
    | ModelChangeEntry
    | AuditEntry
    | CustomEntry
    | CustomMessageEntry
    | CompactionEntry
    | LabelEntry
    | OpaqueEntry
)

ENTRY_TYPES: tuple[type[Entry], ...] = (
    MessageEntry,
    ModelChangeEntry,
    AuditEntry,
    CustomEntry,
    CustomMessageEntry,
    CompactionEntry,
    LabelEntry,
)


def entry_kind(entry: Entry) -> str:
    """The kind name stored in the ``type`` field of the entry's JSON form."""
    return entry.kind if isinstance(entry, OpaqueEntry) else entry.type


# --- the session ----------------------------------------------------------------------


@attrs.define(eq=False)
class Session:
    """A conversation: its header and its tree of entries.

    ``entries`` is in append order; ``leaf_id`` is where the next entry attaches;
    ``version`` counts successful saves and guards against conflicting writers;
    ``incarnation`` is a random token a store gives the session when it creates it, so
    a copy of a deleted session never saves over a new one with the same id (``None``:
    written before incarnations existed). Entries appended since the last save are
    :attr:`unsaved_entries`.
    """

    id: str
    created_at: datetime
    updated_at: datetime
    user_id: str | None = None
    tenant_id: str | None = None
    config: SessionConfig = attrs.field(factory=SessionConfig)
    forked_from: ForkOrigin | None = None
    leaf_id: str | None = None
    version: int = 0
    incarnation: str | None = None
    entries: list[Entry] = attrs.field(factory=list)
    partial: PartialLoad | None = attrs.field(default=None, eq=False)
    _saved_count: int = attrs.field(default=0, alias="saved_count", repr=False)
    _index: dict[str, Entry] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._index = {e.id: e for e in self.entries}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return _header(self) == _header(other) and self.entries == other.entries

    __hash__ = None  # type: ignore[assignment]

    @property
    def unsaved_entries(self) -> Sequence[Entry]:
        """Entries appended since this object was loaded or last saved."""
        return self.entries[self._saved_count :]

    def mark_saved(self, version: int) -> None:
        """Record a successful save (stores call this after their write committed)."""
        self.version = version
        self._saved_count = len(self.entries)

    def get_entry(self, entry_id: str) -> Entry:
        """The entry with this id, or :class:`EntryNotFoundError`."""
        try:
            return self._index[entry_id]
        except KeyError:
            raise EntryNotFoundError(self.id, entry_id) from None

    def has_entry(self, entry_id: str) -> bool:
        return entry_id in self._index

    def add_entry(self, entry: Entry) -> None:
        """Append an entry (its parent must exist) and move the leaf to it.

        Low level: prefer the ``SessionManager.append_*`` methods.
        """
        if entry.id in self._index:
            raise ValueError(f"entry id {entry.id!r} already exists in session {self.id!r}")
        if entry.parent_id is not None and entry.parent_id not in self._index:
            raise EntryNotFoundError(self.id, entry.parent_id)
        self.entries.append(entry)
        self._index[entry.id] = entry
        self.leaf_id = entry.id


def _header(s: Session) -> tuple[Any, ...]:
    return (
        s.id,
        s.user_id,
        s.tenant_id,
        s.created_at,
        s.updated_at,
        s.config,
        s.forked_from,
        s.leaf_id,
        s.version,
    )
