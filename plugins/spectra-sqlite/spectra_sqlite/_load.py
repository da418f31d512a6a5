"""Reading sessions: a whole session in one statement, or the end of its active branch by
walking parent links up from the leaf."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from spectra_core.backend import (
    FORMAT_VERSION,
    CompactionEntry,
    Entry,
    InvalidArgumentError,
    ModelChangeEntry,
    PartialLoad,
    Session,
    SessionNotFoundError,
    StoreError,
    bulk_decoding,
    entries_from_json_lines,
    entry_from_json,
    loads,
    session_from_stored,
    validate_id,
)

from ._rows import Node, fetch

__all__ = ["Loading"]

_T = TypeVar("_T")

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


class Loading:
    """``load`` and ``load_branch`` of :class:`~spectra_sqlite.SQLiteSessionStore`."""

    path: Path
    _json_functions: bool

    async def _transaction(
        self,
        begin: str | None,
        work: Callable[[aiosqlite.Connection], Awaitable[_T]],
        action: str,
    ) -> _T:
        raise NotImplementedError  # the store's

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
        """The whole session, or SessionNotFoundError.

        One statement (``_LOAD``): one read transaction and one trip to aiosqlite's
        thread; where SQLite lacks JSON functions, the header and the entries are read
        by two statements in one transaction.
        """
        validate_id(session_id)

        async def one_statement(db: aiosqlite.Connection) -> Session:
            # The collector is paused from the fetch on, as in the fs store's load: the
            # rows' tuples, made in aiosqlite's thread, would otherwise start a collection
            # every 700 rows over objects that all live on or die together (measured in
            # docs/design/sqlite-store.md).
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
