"""InMemorySessionStore: sessions kept in a dict, lost on restart."""

from __future__ import annotations

from typing import Any

import attrs

from spectra_core import (
    ConflictError,
    Entry,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFound,
    SessionPage,
    StoreBase,
    validate_id,
)
from spectra_core.serde import header_from_dict, header_to_dict
from spectra_core.store import page_of
from spectra_core.tree import trim_to_active_branch


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
            raise SessionNotFound(session_id)
        entries = list(record.entries)
        return Session(**header_from_dict(record.header), entries=entries, saved_count=len(entries))

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        return trim_to_active_branch(await self.load(session_id), tail)

    async def save(self, session: Session) -> None:
        validate_id(session.id)
        record = self._sessions.get(session.id)
        stored = None if record is None else record.info.version
        if session.version == 0 and record is not None:
            raise ConflictError(session.id, 0, stored)
        if session.version != 0 and stored != session.version:
            raise ConflictError(session.id, session.version, stored)
        version = session.version + 1
        new = list(session.unsaved_entries)
        header = header_to_dict(session)
        header["version"] = version
        info = attrs.evolve(SessionInfo.of(session), version=version)
        if record is None:
            self._sessions[session.id] = _Record(header, info, new)
        else:
            record.header, record.info = header, info
            record.entries.extend(new)
        session.mark_saved(version)

    async def delete(self, session_id: str) -> None:
        if self._sessions.pop(validate_id(session_id), None) is None:
            raise SessionNotFound(session_id)

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        return page_of((r.info for r in self._sessions.values()), filter or SessionFilter())
