"""AcmeSessionStore: replace the dict with your storage."""

from __future__ import annotations

from typing import Any

import attrs

from spectra_core import (
    ConflictError,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFound,
    SessionPage,
    StoreBase,
    validate_id,
)
from spectra_core.serde import entry_to_dict, header_to_dict, session_from_dict
from spectra_core.store import page_of


@attrs.frozen
class AcmeStoreOptions:
    """Options of the ``acme`` store (``[store] backend = "acme"``)."""

    namespace: str = "default"


class AcmeSessionStore(StoreBase):
    """Keeps each session as JSON-compatible dicts: a header and a list of entries."""

    def __init__(self, namespace: str = "default") -> None:
        self.namespace = namespace
        self._data: dict[str, dict[str, Any]] = {}

    async def load(self, session_id: str) -> Session:
        row = self._data.get(validate_id(session_id))
        if row is None:
            raise SessionNotFound(session_id)
        return session_from_dict({**row["header"], "entries": list(row["entries"])})

    async def save(self, session: Session) -> None:
        validate_id(session.id)
        row = self._data.get(session.id)
        stored = None if row is None else row["header"]["version"]
        if (session.version == 0) != (row is None) or (row and stored != session.version):
            raise ConflictError(session.id, session.version, stored)
        version = session.version + 1
        header = {**header_to_dict(session), "version": version}
        new = [entry_to_dict(e) for e in session.unsaved_entries]
        if row is None:
            self._data[session.id] = {"header": header, "entries": new}
        else:
            row["header"] = header
            row["entries"].extend(new)
        session.mark_saved(version)

    async def delete(self, session_id: str) -> None:
        if self._data.pop(validate_id(session_id), None) is None:
            raise SessionNotFound(session_id)

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        infos = (
            SessionInfo.of(session_from_dict({**r["header"], "entries": []}))
            for r in self._data.values()
        )
        return page_of(infos, filter or SessionFilter())
