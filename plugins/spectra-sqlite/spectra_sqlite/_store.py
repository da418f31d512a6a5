"""SQLiteSessionStore: sessions in one SQLite file (WAL), one row per entry."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiosqlite

from spectra_core.backend import (
    FORMAT_VERSION,
    ConflictError,
    Duration,
    PendingSave,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFoundError,
    SessionPage,
    StoreBase,
    StoreError,
    cut_page,
    epoch_micros,
    keyset_sql,
    loads,
    parse_duration,
    prepare_save,
    reset_after_fork,
    validate_id,
)
from spectra_core.serde import header_from_dict, header_texts

from ._load import _WALK as _WALK  # (tests read the statements)
from ._load import _WALK_IDS as _WALK_IDS
from ._load import Loading
from ._options import SQLiteStoreOptions, Synchronous, check_synchronous
from ._rows import fetch
from ._save import CONFLICT, SAVE_DDL, save_statements
from ._schema import ensure_schema

__all__ = ["SQLiteSessionStore"]

_T = TypeVar("_T")
#: SQLite errors after which the connection is dropped and reopened on the next call.
_REOPEN_AFTER = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_CORRUPT")

_INFO_COLUMNS = "id, user_id, tenant_id, created_at, updated_at, version, forked_from"


def _create_private(path: Path) -> None:
    """Create the database file 0600 (and missing parent folders 0700) if it is missing."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        folder.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _daemonize(connection: aiosqlite.Connection) -> None:
    """Make the connection's worker thread a daemon, so a store that was never closed
    does not hang interpreter exit (every acknowledged save is already committed)."""
    thread = getattr(connection, "_thread", None)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


#: In a forked child: the connections of the parent, kept and never used or closed
#: (SQLite: a connection must not cross a fork; closing it in the child could touch the
#: parent's WAL).
_INHERITED: list[aiosqlite.Connection] = []


def _new_connection_after_fork(store: SQLiteSessionStore) -> None:
    """In a forked child the parent's aiosqlite thread does not exist: the store would
    queue statements for it forever. It opens its own connection on next use."""
    if store._db is not None:
        _INHERITED.append(store._db)
        store._db = None
    store._lock = asyncio.Lock()


class SQLiteSessionStore(Loading, StoreBase):
    """Sessions in one SQLite database file, on aiosqlite.

    WAL mode; a ``sessions`` table of headers and an ``entries`` table with one row per
    entry. ``save`` is one statement that checks the version, inserts only the new
    entries and updates the header, so its cost does not grow with the session. The
    connection opens on first use; tasks of one process share it under a lock, other
    processes wait up to ``busy_timeout`` for the write lock. ``synchronous`` is the
    SQLite level that decides when a save is acknowledged (see :class:`SQLiteStoreOptions`).
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        synchronous: Synchronous | str = "full",
        busy_timeout: Duration | float | str = 5.0,
    ) -> None:
        self.path = Path(db_path)
        self.synchronous: Synchronous = check_synchronous(synchronous)
        self.busy_timeout: Duration = parse_duration(busy_timeout)
        self._db: aiosqlite.Connection | None = None
        self._json_functions = True  # SQLite's JSON functions (a build may omit them)
        self._lock = asyncio.Lock()
        reset_after_fork(self, _new_connection_after_fork)

    @classmethod
    def from_options(cls, options: SQLiteStoreOptions) -> SQLiteSessionStore:
        return cls(options.path, synchronous=options.synchronous, busy_timeout=options.busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteSessionStore({str(self.path)!r}, synchronous={self.synchronous!r})"

    # --- connection -------------------------------------------------------------------

    async def _open(self) -> aiosqlite.Connection:
        try:
            await asyncio.to_thread(_create_private, self.path)
        except OSError as exc:
            raise StoreError(
                f"cannot create the session database {self.path}: {exc.strerror or exc}; "
                "make its folder writable or point [store] path elsewhere"
            ) from exc
        try:
            pending = aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            _daemonize(pending)
            db = await pending
        except sqlite3.Error as exc:
            raise self._error(exc, "opening the database") from exc
        try:
            ((mode,),) = await fetch(db, "PRAGMA journal_mode = WAL")
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"{self.path}: SQLite refused WAL mode (journal mode is {mode}); "
                    "put the database on a local file system"
                )
            await db.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            await db.execute(f"PRAGMA busy_timeout = {round(self.busy_timeout * 1000)}")
            await ensure_schema(db, str(self.path))
            for statement in SAVE_DDL:
                await db.execute(statement)
            try:
                await fetch(db, "SELECT json_object('a', 1)")
            except sqlite3.OperationalError:
                self._json_functions = False
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc, "opening the database") from exc
            raise
        return db

    async def _connected(self) -> aiosqlite.Connection:
        """The shared connection, opened on first use; call it holding ``self._lock``."""
        db = self._db
        if db is None:
            db = self._db = await self._open()
        return db

    async def _fail(self, db: aiosqlite.Connection, exc: BaseException, action: str) -> NoReturn:
        """Raise ``exc`` after a failed transaction on ``db``: roll back, drop the
        connection if the file changed under it, wrap SQLite errors in StoreError."""
        if db.in_transaction:
            with suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            if getattr(exc, "sqlite_errorname", "").startswith(_REOPEN_AFTER):
                # the file changed under us (moved, remounted, damaged): start afresh on
                # the next call
                self._db = None
                with suppress(sqlite3.Error):
                    await db.close()
            raise self._error(exc, action) from exc
        raise exc

    async def _transaction(
        self,
        begin: str | None,
        work: Callable[[aiosqlite.Connection], Awaitable[_T]],
        action: str,
    ) -> _T:
        """Run ``work`` in one transaction (``begin=None``: ``work`` is one autocommit
        statement); roll back and wrap SQLite errors on failure."""
        async with self._lock:
            db = self._db if self._db is not None else await self._connected()
            try:
                if begin is None:
                    return await work(db)
                await db.execute(begin)
                result = await work(db)
                await db.execute("COMMIT")
                return result
            except BaseException as exc:
                await self._fail(db, exc, action)

    def _error(self, exc: sqlite3.Error, action: str) -> StoreError:
        """A StoreError saying what failed on which file, and what to do about it."""
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB":
            hint = (
                "the file is not a SQLite database (or is encrypted or damaged); "
                "point [store] path at a spectra session database or move this file away"
            )
        elif name == "SQLITE_FULL":
            hint = "the disk is full; nothing was written, free some space and retry"
        elif name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
            hint = (
                "the file or its folder is not writable; fix the permissions or mount, "
                "or point [store] path elsewhere"
            )
        elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            hint = (
                f"another process held the database lock longer than busy_timeout "
                f"({self.busy_timeout:g}s); retry or raise [store] busy_timeout"
            )
        elif name.startswith("SQLITE_CORRUPT"):
            hint = "the database is damaged; restore it from a backup"
        else:
            hint = "check the file and the disk it is on"
        return StoreError(f"{action} in {self.path} failed: {exc} ({name or 'sqlite'}); {hint}")

    async def ping(self) -> None:
        """Open the database if needed and run ``SELECT 1``."""
        async with self._lock:
            db = await self._connected()
            try:
                await fetch(db, "SELECT 1")
            except sqlite3.Error as exc:
                raise self._error(exc, "ping") from exc

    async def aclose(self) -> None:
        """Close the connection (the next call opens it again)."""
        async with self._lock:
            db, self._db = self._db, None
            if db is not None:
                await db.close()

    # --- writing ----------------------------------------------------------------------

    async def save(self, session: Session) -> None:
        """Append the unsaved entries and the header, if the stored version still matches.

        One SQL statement (see ``_save``; one per 190 entries of a bigger batch, in one
        ``BEGIN IMMEDIATE``): the version check, the header and the new entry rows are
        written in one transaction that holds the write lock from its start, so a stale
        copy gets ConflictError and nothing is written.
        """
        pending = prepare_save(session)
        new = pending.new_entries
        for e in new:
            validate_id(e.id, "entry id")
        created, updated, forked, config = header_texts(session)
        statements = save_statements(
            (
                session.id,
                session.version,
                pending.version,
                session.user_id,
                session.tenant_id,
                created,
                updated,
                epoch_micros(session.updated_at),
                session.leaf_id,
                forked,
                config,
                FORMAT_VERSION,
                pending.incarnation,
            ),
            new,
        )

        # Inline rather than through _transaction: a save runs once per message, and
        # each Python call on its path counts (docs/design/sqlite-store.md, "Where a
        # save's time goes").
        async with self._lock:
            db = self._db if self._db is not None else await self._connected()
            try:
                if len(statements) == 1:  # one statement is its own transaction
                    await db.execute_fetchall(*statements[0])
                else:
                    await db.execute("BEGIN IMMEDIATE")
                    for sql, params in statements:
                        await db.execute_fetchall(sql, params)
                    await db.execute("COMMIT")
            except BaseException as exc:
                await self._save_failed(db, exc, pending)
        pending.done()

    async def _save_failed(
        self, db: aiosqlite.Connection, exc: BaseException, pending: PendingSave
    ) -> NoReturn:
        """Raise the error of a failed save: ConflictError for the trigger's version
        check, a StoreError naming a reused entry id, else as :meth:`_fail` does."""
        session = pending.session
        try:
            if isinstance(exc, sqlite3.IntegrityError) and str(exc) == CONFLICT:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                stored = await fetch(
                    db, "SELECT version, incarnation FROM sessions WHERE id = ?", (session.id,)
                )
                version, incarnation = stored[0] if stored else (None, None)
                error = pending.conflict(version, incarnation)
                # (None: the stored session changed again since the trigger's check)
                raise error or ConflictError(session.id, session.version, version) from None
            await self._fail(db, exc, f"saving session {session.id!r}")
        except sqlite3.Error as error:  # reading the stored version failed
            await self._fail(db, error, f"saving session {session.id!r}")
        except StoreError as error:
            if "UNIQUE constraint failed: entries" in str(error):
                raise StoreError(
                    f"saving session {session.id!r} in {self.path}: an unsaved entry reuses "
                    "the id of a stored entry; nothing was written, reload the whole session"
                ) from error
            raise

    async def delete(self, session_id: str) -> None:
        """Delete a session and its entries, or raise SessionNotFoundError."""
        validate_id(session_id)

        async def work(db: aiosqlite.Connection) -> None:
            async with db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)) as cur:
                if cur.rowcount == 0:
                    raise SessionNotFoundError(session_id)
            await db.execute("DELETE FROM entries WHERE session_id = ?", (session_id,))

        await self._transaction("BEGIN IMMEDIATE", work, f"deleting session {session_id!r}")

    # --- listing ----------------------------------------------------------------------

    @staticmethod
    def list_query(flt: SessionFilter) -> tuple[str, list[Any]]:
        """The SQL and parameters of one page of ``list`` (keyset pagination on
        ``(updated_us, id)``, served by the sessions indexes)."""
        clauses, params = keyset_sql(flt)
        return f"SELECT {_INFO_COLUMNS} FROM sessions" + clauses, params

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        """One page of headers, newest first, filtered and paginated in SQL."""
        flt = filter or SessionFilter()
        sql, params = self.list_query(flt)

        async def work(db: aiosqlite.Connection) -> Iterable[Any]:
            return await fetch(db, sql, params)

        rows = list(await self._transaction("BEGIN", work, "listing sessions"))
        return cut_page([self._info(row) for row in rows], flt)

    def _info(self, row: Any) -> SessionInfo:
        sid, user, tenant, created, updated, version, forked = row
        try:
            fields = header_from_dict(
                {
                    "id": sid,
                    "created_at": created,
                    "updated_at": updated,
                    "forked_from": None if forked is None else loads(forked),
                }
            )
        except Exception as exc:
            raise self._corrupt(sid, "the header", exc) from exc
        return SessionInfo(
            id=sid,
            user_id=user,
            tenant_id=tenant,
            created_at=fields["created_at"],
            updated_at=fields["updated_at"],
            forked_from=fields["forked_from"],
            version=version,
        )
