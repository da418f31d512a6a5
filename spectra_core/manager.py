"""SessionManager: create, load, save, fork and grow sessions on top of a store."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import cattrs

from ._checks import json_problem
from .clock import Clock, SystemClock, utc_from_timestamp
from .errors import InvalidArgumentError
from .ids import new_entry_id, new_session_id, validate_id, validate_user_id
from .models import (
    AuditEntry,
    CompactionEntry,
    CustomEntry,
    CustomMessageEntry,
    Entry,
    ForkOrigin,
    LabelEntry,
    Message,
    MessageEntry,
    ModelChangeEntry,
    ModelRef,
    Session,
    SessionConfig,
    UserContent,
    UserMessage,
)
from .serde import converter
from .store import BranchLoadingStore, SessionFilter, SessionPage, SessionStore
from .tree import (
    SessionContext,
    TreeNode,
    build_context,
    get_branch,
    get_tree,
    trim_to_active_branch,
)

__all__ = ["SessionManager"]

_E = TypeVar("_E", bound=Entry)


def _json_value(value: Any, what: str) -> Any:
    """Reject values a store could not give back unchanged, before they enter the tree."""
    problem = json_problem(value)
    if problem is not None:
        raise InvalidArgumentError(f"{what} must be JSON-serializable: {problem}")
    return value


def _why(exc: BaseException) -> str:
    """The first message inside a cattrs error (which wraps the validators' errors)."""
    if isinstance(exc, cattrs.BaseValidationError):
        for sub in exc.exceptions:
            return _why(sub)
    return str(exc) or type(exc).__name__


class SessionManager:
    """Sessions with tree-structured history, persisted in ``store``.

    ``append_*`` methods change the session in memory (attaching at the leaf and moving
    the leaf to the new entry); :meth:`save` persists what was appended.
    """

    def __init__(self, store: SessionStore, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()

    # --- persistence ------------------------------------------------------------------

    async def create(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        tenant_id: str | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create and save a new, empty session."""
        if isinstance(config, Mapping):
            try:
                config = converter.structure(config, SessionConfig)
            except InvalidArgumentError:
                raise
            except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
                raise InvalidArgumentError(f"session config: {_why(exc)}") from None
        elif config is not None and not isinstance(config, SessionConfig):
            raise InvalidArgumentError(
                f"session config must be a SessionConfig or a mapping, got {type(config).__name__}"
            )
        now = self._now()
        session = Session(
            id=new_session_id() if session_id is None else validate_id(session_id),
            created_at=now,
            updated_at=now,
            user_id=None if user_id is None else validate_user_id(user_id),
            tenant_id=None if tenant_id is None else validate_user_id(tenant_id, "tenant id"),
            config=config if config is not None else SessionConfig(),
        )
        await self.store.save(session)
        return session

    async def load(
        self, session_id: str, *, active_branch: bool = False, tail: int | None = None
    ) -> Session:
        """The stored session, or :class:`~spectra_core.SessionNotFoundError`.

        With ``active_branch=True`` (or a ``tail``) only the active branch from the last
        compaction (at most ``tail`` entries) is loaded, which keeps opening a very long
        session fast; the result has ``partial`` set and can be appended to and saved.
        """
        validate_id(session_id)
        if not active_branch and tail is None:
            return await self.store.load(session_id)
        if isinstance(self.store, BranchLoadingStore):
            return await self.store.load_branch(session_id, tail=tail)
        return trim_to_active_branch(await self.store.load(session_id), tail)

    async def save(self, session: Session) -> Session:
        """Persist the entries appended since the last save (see the store contract)."""
        await self.store.save(session)
        return session

    async def delete(self, session_id: str) -> None:
        """Delete a session and its entries."""
        await self.store.delete(validate_id(session_id))

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        """One page of session headers, newest first."""
        return await self.store.list(filter)

    async def fork(self, source_id: str, entry_id: str | None = None) -> Session:
        """Copy the branch root -> ``entry_id`` (default: the leaf) into a new session.

        Entry ids are kept; the new session records its origin in ``forked_from`` and in
        a ``fork`` audit entry. The source session is not changed.
        """
        source = await self.load(source_id)
        path = get_branch(source, entry_id)
        now = self._now()
        origin = ForkOrigin(source.id, path[-1].id if path else None)
        fork = Session(
            id=new_session_id(),
            created_at=now,
            updated_at=now,
            user_id=source.user_id,
            tenant_id=source.tenant_id,
            config=copy.deepcopy(source.config),
            forked_from=origin,
        )
        for entry in path:
            fork.add_entry(entry)
        self.append_audit(
            fork,
            "fork",
            {"source_session_id": origin.session_id, "source_entry_id": origin.entry_id},
        )
        await self.store.save(fork)
        return fork

    # --- growing the tree -------------------------------------------------------------

    def append_message(self, session: Session, message: Message | str) -> MessageEntry:
        """Append a message (a plain string is a user message)."""
        if isinstance(message, str):
            message = UserMessage(message)
        return self._append(session, MessageEntry, message=message)

    def append_model_change(self, session: Session, model: ModelRef | str) -> ModelChangeEntry:
        """From here on this branch uses ``model`` (a ModelRef or a model id)."""
        if isinstance(model, str):
            model = ModelRef(model)
        return self._append(session, ModelChangeEntry, model=model)

    def append_audit(
        self, session: Session, event_type: str, details: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Record something that happened (provenance; never sent to the model)."""
        data = _json_value(dict(details or {}), "audit details")
        return self._append(session, AuditEntry, event_type=event_type, details=data)

    def append_custom(self, session: Session, custom_type: str, data: Any = None) -> CustomEntry:
        """Keep application data in the tree; it is never sent to the model."""
        data = _json_value(data, "custom entry data")
        return self._append(session, CustomEntry, custom_type=custom_type, data=data)

    def append_custom_message(
        self,
        session: Session,
        custom_type: str,
        content: str | Iterable[UserContent],
        *,
        display: bool = True,
        details: Any = None,
    ) -> CustomMessageEntry:
        """Application content that is sent to the model as a user message."""
        details = _json_value(details, "custom message details")
        return self._append(
            session,
            CustomMessageEntry,
            custom_type=custom_type,
            content=content,
            display=display,
            details=details,
        )

    def append_compaction(
        self, session: Session, summary: str, first_kept_entry_id: str, tokens_before: int = 0
    ) -> CompactionEntry:
        """Summarise the branch before ``first_kept_entry_id`` (which must be on it)."""
        if not any(e.id == first_kept_entry_id for e in get_branch(session)):
            raise InvalidArgumentError(
                f"first_kept_entry_id {first_kept_entry_id!r} is not on the active branch "
                f"of session {session.id!r}"
            )
        return self._append(
            session,
            CompactionEntry,
            summary=summary,
            first_kept_entry_id=first_kept_entry_id,
            tokens_before=tokens_before,
        )

    def append_label(self, session: Session, target_id: str, label: str | None) -> LabelEntry:
        """Label entry ``target_id`` (``None`` removes its label)."""
        session.get_entry(target_id)
        return self._append(session, LabelEntry, target_id=target_id, label=label)

    # --- navigating -------------------------------------------------------------------

    def branch(self, session: Session, entry_id: str | None) -> None:
        """Move the leaf to ``entry_id``: the next append starts a sibling branch there.

        ``None`` makes the next append a new root.
        """
        if entry_id is not None:
            session.get_entry(entry_id)
        session.leaf_id = entry_id
        session.updated_at = self._now()

    def get_branch(self, session: Session, entry_id: str | None = None) -> builtins.list[Entry]:
        """The path root -> ``entry_id`` (default: the leaf)."""
        return get_branch(session, entry_id)

    def get_tree(self, session: Session) -> builtins.list[TreeNode]:
        """The roots of the entry tree with their children."""
        return get_tree(session)

    def build_context(self, session: Session, entry_id: str | None = None) -> SessionContext:
        """System prompt, model and messages to send for the branch ending at ``entry_id``."""
        return build_context(session, entry_id)

    def get_entry(self, session: Session, entry_id: str) -> Entry:
        """The entry with this id, or :class:`~spectra_core.EntryNotFoundError`."""
        return session.get_entry(entry_id)

    # --- internals --------------------------------------------------------------------

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.time())

    def _append(self, session: Session, kind: type[_E], **fields: Any) -> _E:
        """Make the entry (its validators refuse what a store could not keep, with
        InvalidArgumentError naming the field) and only then attach it."""
        entry_id = new_entry_id()
        while session.has_entry(entry_id):
            entry_id = new_entry_id()
        now = self._now()
        entry = kind(id=entry_id, parent_id=session.leaf_id, timestamp=now, **fields)
        session.add_entry(entry)
        session.updated_at = now
        return entry
