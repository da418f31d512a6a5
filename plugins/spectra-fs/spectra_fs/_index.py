"""The listing index: a SQLite file beside the sessions, rebuilt from them when needed.

The session files are the truth; the index only serves ``list``. Every save and delete
first records a *pending* marker, then changes its file. A create or delete then updates
the session's row (with the file's stamp: inode and size) and clears the marker; an
append leaves both to the next ``list``, which re-reads the sessions with markers (the
writer's own from what it remembers of its save when the file's stamp still matches).
A process killed in between leaves the marker, and the next ``list`` re-reads those
sessions from their files.

The index is never fsynced (``synchronous=OFF``): a killed process loses nothing the OS
already has, and only an OS crash or power loss can roll the index back or damage it. So
the index records the boot it was written in; the first process of a later boot to open
it runs SQLite's integrity check (rebuilding a damaged index from the files), then
compares every row's stamp with the session files' ``stat`` (no file is read) and marks
the differing sessions pending. Where the OS has no boot id the index keeps
``synchronous=NORMAL`` and, with durability "fsync", fsyncs each marker before the
session file changes. A missing, half-built or corrupt index is rebuilt from the files.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import structlog

from spectra_core import SessionFilter, SessionInfo, SessionPage, StoreError
from spectra_core.serde import converter, dumps
from spectra_core.store import cut_page, epoch_micros, keyset_sql

__all__ = ["INDEX_NAME", "Index", "boot_id"]

INDEX_NAME = "index.sqlite3"
_SCHEMA = "2"
_T = TypeVar("_T")

log = structlog.get_logger("spectra_fs")

_META = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_DDL = """
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY,
    user_id TEXT,
    tenant_id TEXT,
    updated_us INTEGER NOT NULL,
    info TEXT NOT NULL,
    stamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated_us, id);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id, updated_us, id);
CREATE INDEX IF NOT EXISTS sessions_tenant ON sessions(tenant_id, updated_us, id);
CREATE TABLE IF NOT EXISTS pending(token TEXT PRIMARY KEY, session_id TEXT NOT NULL);
"""


_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """An id of the running OS boot (Linux), or ``None`` where there is none."""
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _row(info: SessionInfo, stamp: str) -> tuple[str, str | None, str | None, int, str, str]:
    return (
        info.id,
        info.user_id,
        info.tenant_id,
        epoch_micros(info.updated_at),
        dumps(converter.unstructure(info, SessionInfo)),
        stamp,
    )


_UPSERT = (
    "INSERT INTO sessions(id, user_id, tenant_id, updated_us, info, stamp) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET user_id=excluded.user_id, tenant_id=excluded.tenant_id, "
    "updated_us=excluded.updated_us, info=excluded.info, stamp=excluded.stamp"
)


class Index:
    """One SQLite connection shared by the store's threads (guarded by a lock).

    ``scan`` yields the info and stamp of every session file, for rebuilds; ``stamps``
    maps every session file's id to its stamp, from ``stat`` alone, for the check after
    a restart. ``durable`` (durability "fsync") makes the pending marker reach the disk
    before the session file changes, but only where no boot id tells a restart apart
    (elsewhere the restart check covers what an OS crash can lose).
    """

    def __init__(
        self,
        path: Path,
        scan: Callable[[], Iterable[tuple[SessionInfo, str]]],
        stamps: Callable[[], Mapping[str, str]],
        *,
        durable: bool,
    ) -> None:
        self.path = path
        self._scan = scan
        self._stamps = stamps
        self._durable = durable
        self._sync_markers = durable
        self._sync = "NORMAL"
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
            boot = boot_id()
            self._sync = "NORMAL" if boot is None else "OFF"
            self._sync_markers = self._durable and boot is None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute(_META)
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if rows.get("schema") != _SCHEMA:
                self._reset(conn)
            conn.executescript(_DDL)
            if rows.get("schema") != _SCHEMA or rows.get("complete") != "1":
                self._rebuild(conn)
            if boot is not None:
                self._check_boot(conn, boot)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _reset(conn: sqlite3.Connection) -> None:
        """Drop the tables of another index schema (they are rebuilt from the files)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is not None and row[0] == _SCHEMA:  # another process was quicker
                conn.execute("COMMIT")
                return
            conn.execute("DELETE FROM meta WHERE key = 'complete'")
            conn.execute("DROP TABLE IF EXISTS sessions")
            conn.execute("DROP TABLE IF EXISTS pending")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _check_boot(self, conn: sqlite3.Connection, boot: str) -> None:
        """After a restart, mark pending every session whose file's stamp differs from
        its row (the OS may have lost index writes that were never fsynced)."""
        conn.execute("PRAGMA synchronous=FULL")  # the new boot's mark reaches the disk
        try:
            stale = self._mark_stale(conn, boot)
        finally:
            conn.execute(f"PRAGMA synchronous={self._sync}")
        if stale:
            log.warning(
                "listing index written before a restart: re-reading the sessions that changed",
                index=str(self.path),
                sessions=len(stale),
            )

    def _mark_stale(self, conn: sqlite3.Connection, boot: str) -> list[str]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
            if row is not None and row[0] == boot:
                conn.execute("COMMIT")
                return []
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("integrity check failed: " + "; ".join(problems))
            indexed = dict(conn.execute("SELECT id, stamp FROM sessions").fetchall())
            files = self._stamps()
            stale = sorted(
                {sid for sid, stamp in files.items() if indexed.get(sid) != stamp}
                | (indexed.keys() - files.keys())
            )
            conn.executemany(
                "INSERT INTO pending(token, session_id) VALUES (?, ?)",
                [(uuid.uuid4().hex, sid) for sid in stale],
            )
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('boot', ?)", (boot,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return stale

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
            for info, stamp in self._scan():
                conn.execute(_UPSERT, _row(info, stamp))
                n += 1
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?), ('complete', '1')",
                (_SCHEMA,),
            )
            boot = boot_id()
            if boot is not None:  # the rows are fresh: no restart to check for
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('boot', ?)", (boot,))
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
            if self._sync_markers:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute(
                    "INSERT INTO pending(token, session_id) VALUES (?, ?)", (token, session_id)
                )
            finally:
                if self._sync_markers:
                    conn.execute(f"PRAGMA synchronous={self._sync}")

        self._run("record a pending change", op)
        return token

    def ensure_marker(self, token: str, session_id: str) -> None:
        """Make sure the pending marker ``token`` of ``session_id`` exists (a writer's
        marker stays from its previous save until a ``list`` re-reads the session, so
        most saves only look it up). Called under the session file's exclusive lock: a
        ``list`` removes a marker only under that file's shared lock."""

        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT 1 FROM pending WHERE token = ?", (token,)).fetchone()
            if row is not None:
                return
            if self._sync_markers:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute(
                    "INSERT OR IGNORE INTO pending(token, session_id) VALUES (?, ?)",
                    (token, session_id),
                )
            finally:
                if self._sync_markers:
                    conn.execute(f"PRAGMA synchronous={self._sync}")

        self._run("record a pending change", op)

    def finish(
        self, token: str, session_id: str, info: SessionInfo | None, stamp: str = ""
    ) -> None:
        """Store the session's new row and file stamp (``None``: deleted), clear the marker."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if info is None:
                    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                else:
                    conn.execute(_UPSERT, _row(info, stamp))
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
        clauses, args = keyset_sql(flt)
        sql = "SELECT info FROM sessions" + clauses
        rows = self._run("list sessions", lambda conn: conn.execute(sql, args).fetchall())
        return cut_page([converter.loads(r[0], SessionInfo) for r in rows], flt)
