"""Corrupt and foreign data, schema versions and migration, file permissions."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spectra_core import (
    AssistantMessage,
    ConflictError,
    Session,
    SessionManager,
    SessionNotFoundError,
    StoreError,
)
from spectra_core.serde import entry_to_dict, header_to_dict
from spectra_core.store import SessionFilter
from spectra_core.testing import FakeClock
from spectra_core.tree import trim_to_active_branch
from spectra_sqlite import SCHEMA_VERSION, SQLiteSessionStore
from spectra_sqlite._schema import SCHEMA_V0, SCHEMA_V1

OpenStore = Callable[..., SQLiteSessionStore]


def _sql(db: Path, *statements: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        out: list[tuple[object, ...]] = []
        for s in statements:
            out = conn.execute(s).fetchall()
        conn.commit()
        return out
    finally:
        conn.close()


async def _two_sessions(store: SQLiteSessionStore) -> tuple[SessionManager, Session, Session]:
    manager = SessionManager(store, clock=FakeClock())
    a = await manager.create(user_id="u")
    for i in range(5):
        manager.append_message(a, f"a{i}")
    await manager.save(a)
    b = await manager.create(user_id="u")
    manager.append_message(b, "b")
    await manager.save(b)
    return manager, a, b


JUNK = b"this is a text file, not a database\n" * 200


def _read(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture
def junk_file(db_path: Path) -> Path:
    db_path.write_bytes(JUNK)
    return db_path


@pytest.mark.usefixtures("junk_file")
async def test_not_a_sqlite_file(open_store: OpenStore, db_path: Path) -> None:
    store = open_store()
    with pytest.raises(StoreError) as info:
        await store.load("some-session")
    message = str(info.value)
    assert str(db_path) in message
    assert "not a SQLite database" in message and "[store] path" in message
    assert _read(db_path) == JUNK
    with pytest.raises(StoreError):
        await store.ping()


async def test_sqlite_file_of_another_application(open_store: OpenStore, db_path: Path) -> None:
    _sql(db_path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match=r"not a spectra session store.*invoices") as info:
        await open_store().ping()
    assert str(db_path) in str(info.value)
    assert _sql(db_path, "PRAGMA user_version") == [(0,)]


async def test_future_schema_version_is_refused(open_store: OpenStore, db_path: Path) -> None:
    await _two_sessions(open_store())
    _sql(db_path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=r"newer spectra-sqlite.*upgrade") as info:
        await open_store().load("anything")
    assert str(db_path) in str(info.value)


async def test_bad_entry_json_names_session_and_entry(open_store: OpenStore, db_path: Path) -> None:
    store = open_store()
    _, a, b = await _two_sessions(store)
    broken = a.entries[1]
    _sql(
        db_path,
        f"UPDATE entries SET data = '{{\"type\": \"message\", oops' WHERE id = '{broken.id}'",
    )
    fresh = open_store()
    with pytest.raises(StoreError) as info:
        await fresh.load(a.id)
    message = str(info.value)
    assert a.id in message and broken.id in message and str(db_path) in message
    # other sessions, and windows that do not include the bad row, keep working
    assert await fresh.load(b.id) == b
    part = await fresh.load_branch(a.id, tail=2)
    assert part.entries == a.entries[-2:]
    assert {i.id for i in await fresh.list()} == {a.id, b.id}


async def test_entry_json_of_wrong_shape(open_store: OpenStore, db_path: Path) -> None:
    _, a, _ = await _two_sessions(open_store())
    _sql(db_path, f"UPDATE entries SET data = '[1, 2]' WHERE id = '{a.entries[0].id}'")
    with pytest.raises(StoreError, match=a.entries[0].id):
        await open_store().load(a.id)


async def test_bad_header_json(open_store: OpenStore, db_path: Path) -> None:
    _, a, b = await _two_sessions(open_store())
    _sql(db_path, f"UPDATE sessions SET config = 'nope' WHERE id = '{a.id}'")
    fresh = open_store()
    with pytest.raises(StoreError, match=f"session '{a.id}'.*header"):
        await fresh.load(a.id)
    assert await fresh.load(b.id) == b


async def test_session_of_a_future_format(open_store: OpenStore, db_path: Path) -> None:
    _, a, b = await _two_sessions(open_store())
    _sql(db_path, f"UPDATE sessions SET format = 99 WHERE id = '{a.id}'")
    fresh = open_store()
    with pytest.raises(StoreError, match=f"'{a.id}'.*format 99.*upgrade"):
        await fresh.load(a.id)
    with pytest.raises(StoreError, match="format 99"):
        await fresh.load_branch(a.id, tail=1)
    assert await fresh.load(b.id) == b


def _write_v0(db: Path, sessions: list[Session]) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.executescript(SCHEMA_V0)
        for s in sessions:
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?)",
                (s.id, json.dumps(header_to_dict(s))),
            )
            conn.executemany(
                "INSERT INTO entries VALUES (?, ?, ?)",
                [(s.id, i, json.dumps(entry_to_dict(e))) for i, e in enumerate(s.entries)],
            )
        conn.commit()
    finally:
        conn.close()


async def test_version_zero_file_migrates_forward(open_store: OpenStore, db_path: Path) -> None:
    # Sessions built in memory (never saved), then written in the v0 layout.
    clock = FakeClock()
    manager = SessionManager(open_store(db_path.with_name("unused.db")), clock=clock)
    sessions = []
    for n in range(3):
        clock.advance(60)
        s = Session(
            id=f"old-{n}", created_at=manager._now(), updated_at=manager._now(), user_id=f"u{n}"
        )
        first = manager.append_message(s, "q")
        manager.append_model_change(s, f"model-{n}")
        for i in range(6):
            manager.append_message(s, AssistantMessage(f"a{i}"))
        manager.branch(s, first.id)
        manager.append_message(s, "side")
        manager.append_compaction(s, "summary", first.id)
        manager.append_message(s, "after")
        s.mark_saved(3)
        sessions.append(s)
    _write_v0(db_path, sessions)
    assert _sql(db_path, "PRAGMA user_version") == [(0,)]

    store = open_store()
    for s in sessions:
        loaded = await store.load(s.id)
        assert loaded == s and loaded.version == 3
        for tail in (None, 1, 2):
            part = await store.load_branch(s.id, tail=tail)
            expected = trim_to_active_branch(loaded, tail)
            assert (part.entries, part.partial) == (expected.entries, expected.partial)
    assert _sql(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    tables = {r[0] for r in _sql(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"sessions", "entries"}
    page = await store.list(SessionFilter(user_id="u1"))
    assert [i.id for i in page] == ["old-1"]
    # a migrated session appends as usual
    again = await store.load("old-2")
    manager.store = store
    manager.append_message(again, "new")
    await manager.save(again)
    assert (await open_store().load("old-2")).entries[-1].message.text == "new"  # type: ignore[union-attr]


def _v1_indexes(db: Path) -> None:
    """Turn a file of this release back into the version 1 layout (full user/tenant indexes)."""
    v1 = [line for line in SCHEMA_V1.splitlines() if "_by_user" in line or "_by_tenant" in line]
    assert len(v1) == 2
    _sql(db, "DROP INDEX sessions_by_user", "DROP INDEX sessions_by_tenant", *v1)
    _sql(db, "ALTER TABLE sessions DROP COLUMN incarnation")  # added by version 3
    _sql(db, "PRAGMA user_version = 1")


async def test_version_one_file_migrates_to_partial_indexes(
    open_store: OpenStore, db_path: Path
) -> None:
    first = open_store()
    manager = SessionManager(first, clock=FakeClock())
    anonymous = await manager.create()
    user_only = await manager.create(user_id="u")
    both = await manager.create(user_id="u", tenant_id="t")
    for s in (anonymous, user_only, both):
        manager.append_message(s, f"hello {s.id}")
        await manager.save(s)
    await first.aclose()
    _v1_indexes(db_path)
    assert _sql(db_path, "PRAGMA user_version") == [(1,)]
    for s in (anonymous, user_only, both):
        s.incarnation = None  # as a release writing version 1 made them

    store = open_store()
    await store.ping()
    assert _sql(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(3,)]
    indexes = dict(
        _sql(db_path, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql NOT NULL")
    )
    assert "WHERE user_id IS NOT NULL" in str(indexes["sessions_by_user"])
    assert "WHERE tenant_id IS NOT NULL" in str(indexes["sessions_by_tenant"])
    # the partial indexes hold only the sessions that have the key
    assert _sql(
        db_path, "SELECT count(*) FROM sessions INDEXED BY sessions_by_user WHERE user_id > ''"
    ) == [(2,)]
    assert _sql(
        db_path, "SELECT count(*) FROM sessions INDEXED BY sessions_by_tenant WHERE tenant_id > ''"
    ) == [(1,)]
    for s in (anonymous, user_only, both):
        assert await store.load(s.id) == s
    assert {i.id for i in await store.list(SessionFilter(user_id="u"))} == {user_only.id, both.id}
    assert [i.id for i in await store.list(SessionFilter(tenant_id="t"))] == [both.id]
    assert len((await store.list()).sessions) == 3
    manager.store = store
    manager.append_message(anonymous, "after the migration")
    await manager.save(anonymous)
    assert await open_store().load(anonymous.id) == anonymous


async def test_corrupt_version_zero_file_names_the_session(
    open_store: OpenStore, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    conn.executescript(SCHEMA_V0)
    conn.execute("INSERT INTO sessions VALUES ('bad-one', '{not json')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"'bad-one'.*migrate|migrate.*'bad-one'"):
        await open_store().ping()
    # the failed migration rolled back: the file is still a v0 file
    assert _sql(db_path, "PRAGMA user_version") == [(0,)]
    assert _sql(db_path, "SELECT id FROM sessions") == [("bad-one",)]


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
async def test_files_are_private_even_with_an_open_umask(
    open_store: OpenStore, tmp_path: Path
) -> None:
    db = tmp_path / "new" / "deeper" / "sessions.db"
    store = open_store(db)
    await _two_sessions(store)
    names = {p.name for p in db.parent.iterdir()}
    assert {"sessions.db", "sessions.db-wal", "sessions.db-shm"} <= names
    for p in db.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


async def test_rows_not_in_the_usual_form_are_read_one_by_one(
    open_store: OpenStore, db_path: Path
) -> None:
    """A row that the one-call decoding refuses (pretty-printed JSON, a kind this
    release does not know) is read row by row, as cattrs reads it; the session is the
    same as if every row were in the usual form (unknown keys are ignored either way)."""
    store = open_store()
    _, a, _ = await _two_sessions(store)
    first, second = a.entries[0], a.entries[1]
    pretty = json.dumps(entry_to_dict(first), indent=2)
    extra = {**entry_to_dict(second), "zz_unknown": 1}
    _sql(
        db_path,
        f"UPDATE entries SET data = '{pretty}' WHERE id = '{first.id}'",
        f"UPDATE entries SET data = '{json.dumps(extra)}' WHERE id = '{second.id}'",
    )
    assert await open_store().load(a.id) == a
    future = {
        "type": "from_the_future",
        "id": "f1",
        "parent_id": None,
        "timestamp": "2026-01-01T00:00:00",
    }
    _sql(db_path, f"UPDATE entries SET data = '{json.dumps(future)}' WHERE id = '{first.id}'")
    loaded = await open_store().load(a.id)
    assert loaded.entries[1:] == a.entries[1:]
    assert type(loaded.entries[0]).__name__ == "OpaqueEntry"


@pytest.mark.parametrize("json_functions", [True, False])
async def test_a_load_reads_the_same_with_or_without_sqlite_json_functions(
    open_store: OpenStore, json_functions: bool
) -> None:
    """One statement with json_object() where SQLite has it, else two in a transaction."""
    _, a, b = await _two_sessions(open_store())
    store = open_store()
    await store.ping()
    assert store._json_functions  # this machine's SQLite has them
    store._json_functions = json_functions
    assert await store.load(a.id) == a and await store.load(b.id) == b
    with pytest.raises(SessionNotFoundError):
        await store.load("no-such-session")


@pytest.mark.parametrize("json_functions", [True, False])
async def test_a_load_leaves_the_collector_as_it_found_it(
    open_store: OpenStore, db_path: Path, json_functions: bool
) -> None:
    # A load pauses the collector from its fetch on (bulk_decoding): it must come back on
    # after every way a load ends, and stay off if the caller had turned it off.
    store = open_store()
    store._json_functions = json_functions
    _, a, b = await _two_sessions(store)
    assert await store.load(a.id) == a
    assert gc.isenabled()
    with pytest.raises(SessionNotFoundError):
        await store.load("missing")
    assert gc.isenabled()
    _sql(db_path, f"UPDATE entries SET data = 'oops' WHERE id = '{a.entries[2].id}'")
    with pytest.raises(StoreError, match=a.entries[2].id):
        await store.load(a.id)
    assert gc.isenabled()
    gc.disable()
    try:
        assert await store.load(b.id) == b
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_version_two_file_gains_incarnations(open_store: OpenStore, db_path: Path) -> None:
    first = open_store()
    manager = SessionManager(first, clock=FakeClock())
    old = await manager.create(session_id="old")
    await first.aclose()
    _sql(db_path, "ALTER TABLE sessions DROP COLUMN incarnation", "PRAGMA user_version = 2")
    old.incarnation = None  # as a release writing version 2 made it

    store = open_store()
    manager.store = store
    stale = await manager.load("old")
    assert stale.incarnation is None
    assert _sql(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    manager.append_message(old, "saved after the migration")
    await manager.save(old)  # a session without an incarnation still saves
    await manager.delete("old")
    again = await manager.create(session_id="old")
    assert again.incarnation is not None
    assert stale.version == again.version  # only the incarnation tells them apart
    with pytest.raises(ConflictError, match="created again"):
        await manager.save(stale)
