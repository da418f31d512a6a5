"""InMemorySessionStore: sessions kept in a dict, lost on restart."""

from __future__ import annotations

from typing import Any

import attrs

from spectra_core.backend import (
    Entry,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFoundError,
    SessionPage,
    StoreBase,
    page_of,
    prepare_save,
    session_from_stored,
    trim_to_active_branch,
    validate_id,
)

__all__ = ["InMemorySessionStore", "MemoryStoreOptions"]


@attrs.frozen
class MemoryStoreOptions:
    """The memory store takes no options."""


@attrs.define
class _Record:
    header: dict[str, Any]
    info: SessionInfo
    entries: list[Entry]


class InMemorySessionStore(StoreBase):
    """Sessions in process memory. Saves append only the new entries (entries are frozen
    and shared); loads return independent copies."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Record] = {}

    @classmethod
    def from_options(cls, options: MemoryStoreOptions) -> InMemorySessionStore:
        return cls()

    async def load(self, session_id: str) -> Session:
        record = self._sessions.get(validate_id(session_id))
        if record is None:
            raise SessionNotFoundError(session_id)
        return session_from_stored(record.header, record.entries)

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        return trim_to_active_branch(await self.load(session_id), tail)

    async def save(self, session: Session) -> None:
        pending = prepare_save(session)
        record = self._sessions.get(session.id)
        if record is None:
            pending.check(None, None)
        else:
            pending.check(record.info.version, record.header.get("incarnation"))
        header = pending.header()
        info = attrs.evolve(SessionInfo.of(session), version=pending.version)
        if record is None:
            self._sessions[session.id] = _Record(header, info, pending.new_entries)
        else:
            record.header, record.info = header, info
            record.entries.extend(pending.new_entries)
        pending.done()

    async def delete(self, session_id: str) -> None:
        if self._sessions.pop(validate_id(session_id), None) is None:
            raise SessionNotFoundError(session_id)

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        return page_of((r.info for r in self._sessions.values()), filter or SessionFilter())
