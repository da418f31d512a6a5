"""The database layout, its version (``PRAGMA user_version``) and forward migrations."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from spectra_core.errors import StoreError
from spectra_core.serde import FORMAT_VERSION, converter, header_from_dict
from spectra_core.store import epoch_micros

from ._rows import entry_rows, fetch

__all__ = ["SCHEMA_V0", "SCHEMA_V1", "SCHEMA_V2", "SCHEMA_V3", "SCHEMA_VERSION", "ensure_schema"]

#: The layout this release writes; recorded in ``PRAGMA user_version``.
SCHEMA_VERSION = 3

#: Layout version 0: the pre-release layout (user_version never set): a header JSON per
#: session, an entry JSON per row. Kept to migrate such files forward.
SCHEMA_V0 = """
CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, header TEXT NOT NULL);
CREATE TABLE entries (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""

SCHEMA_V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT,
    tenant_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    leaf_id TEXT,
    forked_from TEXT,
    config TEXT NOT NULL,
    entry_count INTEGER NOT NULL,
    format INTEGER NOT NULL
);
CREATE INDEX sessions_by_updated ON sessions (updated_us, id);
CREATE INDEX sessions_by_user ON sessions (user_id, updated_us, id);
CREATE INDEX sessions_by_tenant ON sessions (tenant_id, updated_us, id);
CREATE TABLE entries (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT,
    kind TEXT NOT NULL,
    depth INTEGER NOT NULL,
    model_seq INTEGER,
    compaction_seq INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX entries_by_id ON entries (session_id, id);
"""

_PARTIAL_INDEXES = """
CREATE INDEX sessions_by_user ON sessions (user_id, updated_us, id) WHERE user_id IS NOT NULL;
CREATE INDEX sessions_by_tenant ON sessions (tenant_id, updated_us, id)
    WHERE tenant_id IS NOT NULL;
"""

#: Layout version 2: as version 1, but the user and tenant indexes leave out sessions
#: without a user / tenant (a save of such a session updates two index pages fewer; a
#: filter ``user_id = ?`` implies ``IS NOT NULL``, so listing still reads these indexes).
SCHEMA_V2 = (
    SCHEMA_V1.replace(
        "CREATE INDEX sessions_by_user ON sessions (user_id, updated_us, id);\n", ""
    ).replace("CREATE INDEX sessions_by_tenant ON sessions (tenant_id, updated_us, id);\n", "")
    + _PARTIAL_INDEXES
)

_INCARNATION = "ALTER TABLE sessions ADD COLUMN incarnation TEXT"

#: Layout version 3: as version 2, plus the session's incarnation (a random token given
#: at creation; NULL for sessions created before), which a save compares with its copy's
#: so that a copy of a deleted session never saves over a new one under the same id.
SCHEMA_V3 = SCHEMA_V2 + _INCARNATION + ";\n"

_INSERT_SESSION = (
    "INSERT INTO sessions (id, user_id, tenant_id, created_at, updated_at, updated_us, version,"
    " leaf_id, forked_from, config, entry_count, format) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_ENTRY = (
    "INSERT INTO entries (session_id, seq, id, parent_id, kind, depth, model_seq,"
    " compaction_seq, data) VALUES (?,?,?,?,?,?,?,?,?)"
)


async def _script(db: aiosqlite.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            await db.execute(statement)


async def _migrate_v0(db: aiosqlite.Connection, path: str) -> None:
    """v0 -> v1: split the header JSON into columns, add the tree columns to entries."""
    await db.execute("ALTER TABLE sessions RENAME TO v0_sessions")
    await db.execute("ALTER TABLE entries RENAME TO v0_entries")
    await _script(db, SCHEMA_V1)
    for session_id, header_json in await fetch(
        db, "SELECT id, header FROM v0_sessions ORDER BY id"
    ):
        try:
            header: dict[str, Any] = json.loads(header_json)
            raw = await fetch(
                db, "SELECT data FROM v0_entries WHERE session_id = ? ORDER BY seq", (session_id,)
            )
            entries = [json.loads(data) for (data,) in raw]
            rows = entry_rows(session_id, 0, entries, {})
            fields = header_from_dict(header)
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(
                f"cannot migrate session {session_id!r} of {path} to schema version 1: "
                f"its data is corrupt ({exc}); repair or delete it with the previous release"
            ) from exc
        forked = header.get("forked_from")
        await db.execute(
            _INSERT_SESSION,
            (
                session_id,
                header.get("user_id"),
                header.get("tenant_id"),
                converter.unstructure(fields["created_at"]),
                converter.unstructure(fields["updated_at"]),
                epoch_micros(fields["updated_at"]),
                int(header.get("version", 0)),
                header.get("leaf_id"),
                None if forked is None else json.dumps(forked),
                json.dumps(header.get("config") or {}),
                len(rows),
                FORMAT_VERSION,
            ),
        )
        await db.executemany(_INSERT_ENTRY, rows)
    await db.execute("DROP TABLE v0_entries")
    await db.execute("DROP TABLE v0_sessions")


async def _migrate_v1(db: aiosqlite.Connection, path: str) -> None:
    """v1 -> v2: make the user and tenant indexes partial (rows with a NULL key left out)."""
    await db.execute("DROP INDEX sessions_by_user")
    await db.execute("DROP INDEX sessions_by_tenant")
    await _script(db, _PARTIAL_INDEXES)


async def _migrate_v2(db: aiosqlite.Connection, path: str) -> None:
    """v2 -> v3: the incarnation column (NULL: the session predates incarnations)."""
    await db.execute(_INCARNATION)


#: ``_MIGRATIONS[n]`` upgrades a file from layout ``n`` to ``n + 1``.
_MIGRATIONS: dict[int, Callable[[aiosqlite.Connection, str], Awaitable[None]]] = {
    0: _migrate_v0,
    1: _migrate_v1,
    2: _migrate_v2,
}


async def _tables(db: aiosqlite.Connection) -> dict[str, set[str]]:
    names = [
        name
        for (name,) in await fetch(
            db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    out: dict[str, set[str]] = {}
    for name in names:
        cols = await fetch(db, f"PRAGMA table_info({json.dumps(name)})")
        out[name] = {str(c[1]) for c in cols}
    return out


async def ensure_schema(db: aiosqlite.Connection, path: str) -> None:
    """Create the layout in an empty file, migrate an older one forward, refuse a newer one.

    A file already at this version is only read. Otherwise the work runs in one
    ``BEGIN IMMEDIATE`` transaction, so processes opening the file at once agree.
    """
    ((version,),) = await fetch(db, "PRAGMA user_version")
    if version == SCHEMA_VERSION:
        return
    _refuse_newer(version, path)
    await db.execute("BEGIN IMMEDIATE")
    try:
        ((version,),) = await fetch(db, "PRAGMA user_version")
        _refuse_newer(version, path)
        if version == 0:
            tables = await _tables(db)
            if not tables:
                await _script(db, SCHEMA_V3)
                version = SCHEMA_VERSION
            elif "header" not in tables.get("sessions", set()) or "entries" not in tables:
                raise StoreError(
                    f"{path} is a SQLite database but not a spectra session store (tables: "
                    f"{', '.join(sorted(tables))}); point [store] path at another file"
                )
        while version < SCHEMA_VERSION:
            await _MIGRATIONS[version](db, path)
            version += 1
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise


def _refuse_newer(version: int, path: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, written by a newer spectra-sqlite; "
            f"this one reads versions up to {SCHEMA_VERSION}: upgrade spectra-sqlite"
        )
