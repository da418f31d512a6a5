"""AcmeSessionStore: sessions in a SQLite file through the standard library's sqlite3.

Replace the SQL with your storage; keep the shape: ``prepare_save`` checks and states
what to write, ``session_from_stored`` builds what a load returns, ``keyset_sql`` (or
``page_of`` for a store that scans in memory) makes a page of ``list``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import attrs

from spectra_core.backend import (
    PendingSave,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFoundError,
    SessionPage,
    StoreBase,
    cut_page,
    dumps,
    entry_from_json,
    entry_to_json,
    epoch_micros,
    keyset_sql,
    prepare_save,
    session_from_stored,
    trim_to_active_branch,
    validate_id,
)

__all__ = ["AcmeSessionStore", "AcmeStoreOptions"]

_T = TypeVar("_T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id TEXT, tenant_id TEXT, updated_us INTEGER NOT NULL,
    version INTEGER NOT NULL, incarnation TEXT, header TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""


@attrs.frozen
class AcmeStoreOptions:
    """Options of the ``acme`` store (``[store] backend = "acme"``): ``path``, the file."""

    path: str = "acme-sessions.db"


class AcmeSessionStore(StoreBase):
    """One row per session (the header as JSON) and one per entry, in a SQLite file.

    Every call opens its own connection on a worker thread: nothing is shared between
    threads or across ``fork()``, at the cost of an open per call.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def from_options(cls, options: AcmeStoreOptions) -> AcmeSessionStore:
        return cls(options.path)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        def call() -> _T:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                db.executescript(_SCHEMA)
                return work(db)
            finally:
                db.close()

        return await asyncio.to_thread(call)

    async def load(self, session_id: str) -> Session:
        validate_id(session_id)

        def work(db: sqlite3.Connection) -> Session:
            db.execute("BEGIN")  # the header and the entries of one moment
            row = db.execute("SELECT header FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise SessionNotFoundError(session_id)
            data = db.execute(
                "SELECT data FROM entries WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
            db.execute("COMMIT")
            return session_from_stored(json.loads(row[0]), [entry_from_json(d) for (d,) in data])

        return await self._run(work)

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        return trim_to_active_branch(await self.load(session_id), tail)

    async def save(self, session: Session) -> None:
        pending = prepare_save(session)
        await self._run(lambda db: self._save(db, pending))
        pending.done()

    @staticmethod
    def _save(db: sqlite3.Connection, pending: PendingSave) -> None:
        session = pending.session
        db.execute("BEGIN IMMEDIATE")  # the check and the writes under one write lock
        try:
            row = db.execute(
                "SELECT version, incarnation, (SELECT count(*) FROM entries WHERE session_id = ?1)"
                " FROM sessions WHERE id = ?1",
                (session.id,),
            ).fetchone()
            pending.check(*(row[:2] if row else (None, None)))
            header = dumps(pending.header())
            values = (session.user_id, session.tenant_id, epoch_micros(session.updated_at))
            if row is None:
                db.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (session.id, *values, pending.version, pending.incarnation, header),
                )
            else:
                db.execute(
                    "UPDATE sessions SET user_id = ?, tenant_id = ?, updated_us = ?,"
                    " version = ?, header = ? WHERE id = ?",
                    (*values, pending.version, header, session.id),
                )
            stored = 0 if row is None else row[2]  # never len(session.entries): it may be partial
            new = enumerate(pending.new_entries, start=stored)
            rows = [(session.id, seq, entry_to_json(e)) for seq, e in new]
            db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def delete(self, session_id: str) -> None:
        validate_id(session_id)

        def work(db: sqlite3.Connection) -> None:
            with db:
                if db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 0:
                    raise SessionNotFoundError(session_id)
                db.execute("DELETE FROM entries WHERE session_id = ?", (session_id,))

        await self._run(work)

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        flt = filter or SessionFilter()
        clauses, params = keyset_sql(flt)  # placeholder="$1" for asyncpg, "%s" for psycopg
        rows = await self._run(
            lambda db: db.execute("SELECT header FROM sessions" + clauses, params).fetchall()
        )
        return cut_page([SessionInfo.of(session_from_stored(json.loads(h))) for (h,) in rows], flt)
