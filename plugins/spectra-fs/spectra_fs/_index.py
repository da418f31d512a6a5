"""The listing index: a SQLite file beside the sessions, rebuilt from them when needed.

The session files are the truth; the index only serves ``list``. Every save and delete
first records a *pending* marker, then changes its file, then updates the session's row
and clears the marker. A process killed in between leaves the marker, and the next
``list`` re-reads those sessions from their files. A missing, half-built or corrupt index
is rebuilt from the files.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog

from spectra_core import SessionFilter, SessionInfo, SessionPage, StoreError
from spectra_core.serde import converter, dumps
from spectra_core.store import decode_cursor, encode_cursor

__all__ = ["INDEX_NAME", "Index", "micros"]

INDEX_NAME = "index.sqlite3"
_SCHEMA = "1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_T = TypeVar("_T")

log = structlog.get_logger("spectra_fs")

_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY,
    user_id TEXT,
    tenant_id TEXT,
    updated_us INTEGER NOT NULL,
    info TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated_us, id);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, updated_us, id);
CREATE INDEX IF NOT EXISTS sessions_tenant ON sessions(tenant_id, updated_us, id);
CREATE TABLE IF NOT EXISTS pending(token TEXT PRIMARY KEY, session_id TEXT NOT NULL);
"""


def micros(value: datetime) -> int:
    """Microseconds since the epoch (a naive datetime counts as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _US


def _row(info: SessionInfo) -> tuple[str, str | None, str | None, int, str]:
    return (
        info.id,
        info.user_id,
        info.tenant_id,
        micros(info.updated_at),
        dumps(converter.unstructure(info, SessionInfo)),
    )


_UPSERT = (
    "INSERT INTO sessions(id, user_id, tenant_id, updated_us, info) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET user_id=excluded.user_id, tenant_id=excluded.tenant_id, "
    "updated_us=excluded.updated_us, info=excluded.info"
)


class Index:
    """One SQLite connection shared by the store's threads (guarded by a lock).

    ``scan`` yields the info of every session file, for rebuilds. ``durable`` makes the
    pending marker reach the disk before the session file changes (durability "fsync").
    """

    def __init__(
        self, path: Path, scan: Callable[[], Iterable[SessionInfo]], *, durable: bool
    ) -> None:
        self.path = path
        self._scan = scan
        self._durable = durable
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # --- connection -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        conn = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_DDL)
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if rows.get("schema") != _SCHEMA or rows.get("complete") != "1":
                self._rebuild(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self._conn = self._connect()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            self._discard(exc)
            self._conn = self._connect()
        return self._conn

    def _discard(self, exc: BaseException) -> None:
        """Move a corrupt index aside (kept for inspection) so a fresh one is built."""
        log.warning(
            "listing index is corrupt, rebuilding it from the session files",
            index=str(self.path),
            error=str(exc),
        )
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        if self.path.exists():
            os.replace(self.path, f"{self.path}.corrupt")

    def _run(self, what: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the connection; rebuild once if the index turns out corrupt."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    return fn(self._open())
                except (sqlite3.OperationalError, OSError) as exc:
                    raise StoreError(
                        f"listing index {self.path}: could not {what}: {exc}; "
                        "check the directory is writable and has free space"
                    ) from exc
                except sqlite3.DatabaseError as exc:
                    if attempt == 2:
                        raise StoreError(
                            f"listing index {self.path}: could not {what}: {exc}; "
                            "delete the file and it will be rebuilt"
                        ) from exc
                    self._discard(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- rebuild ----------------------------------------------------------------------

    def _rebuild(self, conn: sqlite3.Connection) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM sessions")
            n = 0
            for info in self._scan():
                conn.execute(_UPSERT, _row(info))
                n += 1
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?), ('complete', '1')",
                (_SCHEMA,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("listing index rebuilt", index=str(self.path), sessions=n)
        return n

    def rebuild(self) -> int:
        """Rebuild the index from the session files; the number of sessions indexed."""
        return self._run("rebuild", self._rebuild)

    # --- writes -----------------------------------------------------------------------

    def begin(self, session_id: str) -> str:
        """Record that ``session_id`` is about to change; returns the marker's token."""
        token = uuid.uuid4().hex

        def op(conn: sqlite3.Connection) -> None:
            if self._durable:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute(
                    "INSERT INTO pending(token, session_id) VALUES (?, ?)", (token, session_id)
                )
            finally:
                if self._durable:
                    conn.execute("PRAGMA synchronous=NORMAL")

        self._run("record a pending change", op)
        return token

    def finish(self, token: str, session_id: str, info: SessionInfo | None) -> None:
        """Store the session's new row (``None``: deleted) and clear the marker."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if info is None:
                    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                else:
                    conn.execute(_UPSERT, _row(info))
                conn.execute("DELETE FROM pending WHERE token = ?", (token,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run("update the session's row", op)

    def cancel(self, token: str) -> None:
        """Clear a marker whose change did not happen."""
        self._run(
            "clear a pending change",
            lambda conn: conn.execute("DELETE FROM pending WHERE token = ?", (token,)),
        )

    def pending(self) -> list[tuple[str, str]]:
        """Markers left by changes in flight or by processes that died mid-change."""
        return self._run(
            "read pending changes",
            lambda conn: conn.execute("SELECT token, session_id FROM pending").fetchall(),
        )

    # --- reads ------------------------------------------------------------------------

    def list(self, flt: SessionFilter) -> SessionPage:
        where: list[str] = []
        args: list[Any] = []
        if flt.user_id is not None:
            where.append("user_id = ?")
            args.append(flt.user_id)
        if flt.tenant_id is not None:
            where.append("tenant_id = ?")
            args.append(flt.tenant_id)
        if flt.updated_after is not None:
            where.append("updated_us >= ?")
            args.append(micros(flt.updated_after))
        if flt.updated_before is not None:
            where.append("updated_us < ?")
            args.append(micros(flt.updated_before))
        if flt.cursor is not None:
            stamp, after_id = decode_cursor(flt.cursor)
            us = micros(stamp)
            where.append("(updated_us < ? OR (updated_us = ? AND id < ?))")
            args += [us, us, after_id]
        sql = "SELECT info FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_us DESC, id DESC LIMIT ?"
        args.append(flt.limit + 1)
        rows = self._run("list sessions", lambda conn: conn.execute(sql, args).fetchall())
        infos = [converter.loads(r[0], SessionInfo) for r in rows]
        page = tuple(infos[: flt.limit])
        more = len(infos) > flt.limit
        return SessionPage(page, encode_cursor(page[-1]) if more and page else None)
