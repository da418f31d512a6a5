"""SQLiteSessionStore: sessions in one SQLite file (WAL), one row per entry."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiosqlite

from spectra_core.backend import (
    FORMAT_VERSION,
    CompactionEntry,
    ConflictError,
    Duration,
    Entry,
    InvalidArgumentError,
    ModelChangeEntry,
    PartialLoad,
    PendingSave,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFoundError,
    SessionPage,
    StoreBase,
    StoreError,
    bulk_decoding,
    cut_page,
    entries_from_json_lines,
    entry_from_json,
    epoch_micros,
    keyset_sql,
    loads,
    parse_duration,
    prepare_save,
    reset_after_fork,
    session_from_stored,
    validate_id,
)
from spectra_core.serde import header_from_dict, header_texts

from ._options import SqliteStoreOptions, Synchronous, check_synchronous
from ._rows import Node, fetch
from ._save import CONFLICT, SAVE_DDL, save_statements
from ._schema import ensure_schema

__all__ = ["SQLiteSessionStore"]

_T = TypeVar("_T")
#: SQLite errors after which the connection is dropped and reopened on the next call.
_REOPEN_AFTER = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_CORRUPT")

# BLOB: the JSON's UTF-8 bytes as stored, which the decoder reads without making a str
_ENTRY_DATA = "SELECT CAST(data AS BLOB) FROM entries WHERE session_id = ? ORDER BY seq"
_HEADER_COLUMNS = (
    "id, user_id, tenant_id, created_at, updated_at, version, leaf_id, forked_from, config,"
    " entry_count, format, incarnation"
)
_HEADER_NAMES = tuple(_HEADER_COLUMNS.replace(",", " ").split())
# A whole session in one statement: the header as a JSON object (sort key -1, so first),
# then every entry's JSON in seq order; both arms are read in index order and merged
# without a sort. forked_from and config stay JSON text inside it.
_LOAD = f"""
SELECT -1 AS k, json_object({", ".join(f"'{c}', {c}" for c in _HEADER_NAMES)})
FROM sessions WHERE id = ?1
UNION ALL
SELECT seq, CAST(data AS BLOB) FROM entries WHERE session_id = ?1
ORDER BY k
"""
_INFO_COLUMNS = "id, user_id, tenant_id, created_at, updated_at, version, forked_from"
_NODE = "SELECT seq, kind, depth, model_seq, compaction_seq FROM entries"
# The active branch up from entry ``?2``: at most ``?3`` rows, each read by the id index.
_WALK = """
WITH RECURSIVE walk(seq, id, parent_id, depth, model_seq, data, n) AS (
    SELECT seq, id, parent_id, depth, model_seq, data, 1
    FROM entries WHERE session_id = ?1 AND id = ?2
    UNION ALL
    SELECT e.seq, e.id, e.parent_id, e.depth, e.model_seq, e.data, walk.n + 1 FROM walk
    JOIN entries AS e ON e.session_id = ?1 AND e.id = walk.parent_id
    WHERE walk.n < ?3
)
SELECT seq, id, depth, model_seq, data FROM walk ORDER BY seq
"""
_WALK_IDS = """
WITH RECURSIVE walk(id, parent_id, n) AS (
    SELECT id, parent_id, 1 FROM entries WHERE session_id = ?1 AND id = ?2
    UNION ALL
    SELECT e.id, e.parent_id, walk.n + 1 FROM walk
    JOIN entries AS e ON e.session_id = ?1 AND e.id = walk.parent_id
    WHERE walk.n < ?3
)
SELECT id FROM walk ORDER BY n DESC LIMIT 1
"""


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


class SQLiteSessionStore(StoreBase):
    """Sessions in one SQLite database file, on aiosqlite.

    WAL mode; a ``sessions`` table of headers and an ``entries`` table with one row per
    entry. ``save`` is one statement that checks the version, inserts only the new
    entries and updates the header, so its cost does not grow with the session. The
    connection opens on first use; tasks of one process share it under a lock, other
    processes wait up to ``busy_timeout`` for the write lock. ``synchronous`` is the
    SQLite level that decides when a save is acknowledged (see :class:`SqliteStoreOptions`).
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
    def from_options(cls, options: SqliteStoreOptions) -> SQLiteSessionStore:
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

    # --- reading ----------------------------------------------------------------------

    def _corrupt(self, session_id: str, what: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"session {session_id!r} in {self.path}: {what} is corrupt ({exc}); "
            "restore the file from a backup or delete this session (other sessions are "
            "not affected)"
        )

    def _entry(self, session_id: str, seq: int, entry_id: str, data: str | bytes) -> Entry:
        try:
            return entry_from_json(data)
        except Exception as exc:
            raise self._corrupt(session_id, f"entry {entry_id!r} (#{seq})", exc) from exc

    async def _header(
        self, db: aiosqlite.Connection, session_id: str
    ) -> tuple[dict[str, Any], int]:
        """The session's header (JSON values) and its number of stored entries."""
        rows = await fetch(
            db, f"SELECT {_HEADER_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        )
        if not rows:
            raise SessionNotFoundError(session_id)
        return self._header_of(session_id, rows[0])

    def _header_of(self, session_id: str, values: Sequence[Any]) -> tuple[dict[str, Any], int]:
        """The header and entry count from the values of ``_HEADER_COLUMNS``."""
        (sid, user, tenant, created, updated, version, leaf, forked, config, count, fmt, inc) = (
            values
        )
        if fmt > FORMAT_VERSION:
            raise StoreError(
                f"session {session_id!r} in {self.path} was written in format {fmt} by a "
                f"newer spectra; this one reads up to {FORMAT_VERSION}: upgrade spectra"
            )
        try:
            header = {
                "id": sid,
                "user_id": user,
                "tenant_id": tenant,
                "created_at": created,
                "updated_at": updated,
                "version": version,
                "leaf_id": leaf,
                "forked_from": None if forked is None else loads(forked),
                "config": loads(config),
                "incarnation": inc,
            }
        except ValueError as exc:
            raise self._corrupt(session_id, "the header", exc) from exc
        return header, count

    def _with_entries(
        self, header: dict[str, Any], entries: list[Entry], partial: PartialLoad | None = None
    ) -> Session:
        try:
            return session_from_stored(header, entries, partial=partial)
        except ValueError as exc:
            raise self._corrupt(str(header["id"]), "the header", exc) from exc

    async def load(self, session_id: str) -> Session:
        """The whole session, or SessionNotFound.

        One statement (``_LOAD``): one read transaction and one trip to aiosqlite's
        thread; where SQLite lacks JSON functions, the header and the entries are read
        by two statements in one transaction.
        """
        validate_id(session_id)

        async def one_statement(db: aiosqlite.Connection) -> Session:
            # The collector is paused from the fetch on, as in the fs store's load: the
            # rows' tuples, made in aiosqlite's thread, would otherwise start a collection
            # every 700 rows (13 during a 10,000-entry fetch, one of them of the middle
            # generation) over objects that all live on or die together.
            with bulk_decoding():
                result = await db.execute_fetchall(_LOAD, (session_id,))
                rows = result if isinstance(result, list) else list(result)
                if not rows or rows[0][0] != -1:
                    raise SessionNotFoundError(session_id)
                head = loads(rows[0][1])
                data = [d for _, d in rows]
                # aiosqlite's thread holds this very list until its next call: free the
                # rows here, in the load that made them, not in whatever runs next
                rows.clear()
                del data[0]
                header, _ = self._header_of(session_id, [head[c] for c in _HEADER_NAMES])
                entries = await self._entries(db, session_id, data)
            return self._with_entries(header, entries)

        async def two_statements(db: aiosqlite.Connection) -> Session:
            header, _ = await self._header(db, session_id)
            with bulk_decoding():  # as in one_statement
                rows = await fetch(db, _ENTRY_DATA, (session_id,))
                data = [d for (d,) in rows]
                rows.clear()
                entries = await self._entries(db, session_id, data)
            return self._with_entries(header, entries)

        what = f"loading session {session_id!r}"
        if self._json_functions:
            return await self._transaction(None, one_statement, what)
        return await self._transaction("BEGIN", two_statements, what)

    async def _entries(
        self, db: aiosqlite.Connection, session_id: str, rows: list[bytes]
    ) -> list[Entry]:
        """The entries of all the session's ``data`` values, in order; one that does not
        decode is named (id and seq) in the error."""
        entries: list[Entry] = []
        with bulk_decoding():
            try:
                every = entries_from_json_lines(b"\n".join(rows))
            except ValueError:
                pass  # not all in the usual form: row by row, to convert or name each
            else:
                if len(every) == len(rows):  # (a row holding a newline is not one line)
                    return every
            try:
                for data in rows:
                    entries.append(entry_from_json(data))
            except ValueError as exc:
                error = exc
            else:
                return entries
        seq = len(entries)
        found = await fetch(
            db, "SELECT id FROM entries WHERE session_id = ? AND seq = ?", (session_id, seq)
        )
        entry_id = found[0][0] if found else None
        raise self._corrupt(session_id, f"entry {entry_id!r} (#{seq})", error) from error

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        """The active branch from the last compaction's first kept entry (at most ``tail``
        entries), read by walking parent links up from the leaf: the rows read are the
        rows returned plus a few index lookups, however long the session is."""
        validate_id(session_id)
        if tail is not None and tail < 1:
            raise InvalidArgumentError(f"tail must be at least 1, got {tail}")

        async def work(db: aiosqlite.Connection) -> Session:
            header, total = await self._header(db, session_id)
            leaf_id = header["leaf_id"]
            if leaf_id is None:
                return self._with_entries(header, [], PartialLoad(None, None) if total else None)
            leaf = await self._node(db, session_id, leaf_id)
            if leaf is None:
                raise self._corrupt(session_id, "the header", KeyError(f"no leaf {leaf_id!r}"))
            start = 0 if tail is None else max(0, leaf.depth + 1 - tail)
            check_kept: tuple[str, int] | None = None
            comp = await self._last_compaction(db, session_id, leaf)
            if comp is not None:
                comp_id, comp_depth, kept_id, kept_depth = comp
                if kept_id is None or kept_depth is None:
                    start = max(start, comp_depth)
                elif start >= comp_depth:
                    pass
                elif start > kept_depth:
                    # The tail cuts between the kept entry and the compaction: the kept
                    # entry must really be above the compaction for the tail to apply.
                    top = await fetch(
                        db, _WALK_IDS, (session_id, comp_id, comp_depth - kept_depth + 1)
                    )
                    if not top or top[0][0] != kept_id:
                        start = comp_depth
                else:
                    start, check_kept = kept_depth, (kept_id, comp_depth)
            rows = await fetch(db, _WALK, (session_id, leaf_id, leaf.depth - start + 1))
            if check_kept is not None and (not rows or rows[0][1] != check_kept[0]):
                # The kept entry is not above the compaction: start at the compaction.
                rows = [r for r in rows if r[2] >= check_kept[1]]
            with bulk_decoding():
                entries = [self._entry(session_id, seq, eid, data) for seq, eid, _, _, data in rows]
            model = None
            if rows and rows[0][3] is not None:
                found = await fetch(
                    db,
                    "SELECT seq, id, data FROM entries WHERE session_id = ? AND seq = ?",
                    (session_id, rows[0][3]),
                )
                change = self._entry(session_id, *found[0]) if found else None
                if isinstance(change, ModelChangeEntry):
                    model = change.model
            partial = None
            if len(entries) != total:
                partial = PartialLoad(entries[0].id if entries else None, model)
            return self._with_entries(header, entries, partial)

        return await self._transaction("BEGIN", work, f"loading session {session_id!r}")

    async def _node(self, db: aiosqlite.Connection, session_id: str, entry_id: str) -> Node | None:
        rows = await fetch(db, f"{_NODE} WHERE session_id = ? AND id = ?", (session_id, entry_id))
        return Node(*rows[0]) if rows else None

    async def _last_compaction(
        self, db: aiosqlite.Connection, session_id: str, leaf: Node
    ) -> tuple[str, int, str | None, int | None] | None:
        """The last compaction on the leaf's branch: its id and depth, and the id and
        depth of its first kept entry when that is stored at a smaller depth."""
        if leaf.compaction_seq is None:
            return None
        rows = await fetch(
            db,
            "SELECT seq, id, depth, data FROM entries WHERE session_id = ? AND seq = ?",
            (session_id, leaf.compaction_seq),
        )
        if not rows:
            return None
        seq, comp_id, comp_depth, data = rows[0]
        comp = self._entry(session_id, seq, comp_id, data)
        if not isinstance(comp, CompactionEntry):
            return None
        kept = await self._node(db, session_id, comp.first_kept_entry_id)
        if kept is None or kept.depth >= comp_depth:
            return comp_id, comp_depth, None, None
        return comp_id, comp_depth, comp.first_kept_entry_id, kept.depth

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
        # each Python call on its path counts (docs/stores/sqlite.md, "Where a save's
        # time goes").
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
        """Delete a session and its entries, or raise SessionNotFound."""
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
