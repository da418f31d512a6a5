"""Files and databases written by the format-1 release still load, equal to what was saved.

``tests/fixtures/format1/`` was written once by that release (see ``stored_sessions``)
and is never rewritten; each test works on a copy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from stored_sessions import sessions

from spectra_core import OpaqueEntry, Session, SessionManager, UserMessage
from spectra_core.serde import (
    FORMAT_VERSION,
    entry_from_json,
    entry_records_from_json_lines,
    header_from_dict,
    session_from_dict,
)
from spectra_core.tree import trim_to_active_branch

FIXTURES = Path(__file__).parent.parent / "fixtures" / "format1"
SESSION_IDS = ["fixture-main", "fixture-fork", "fixture-empty"]


def test_the_format_is_still_version_1() -> None:
    # Reading the fixtures needs no migration: a new version would need new fixtures and
    # a test that these still load through the migration.
    assert FORMAT_VERSION == 1


@pytest.mark.parametrize("sid", SESSION_IDS)
def test_fs_lines_decode_with_the_codec_alone(sid: str) -> None:
    """No store: the header and entry lines of an fs file through ``spectra_core.serde``."""
    data = (FIXTURES / "fs" / f"{sid}.jsonl").read_bytes()
    lines = data.splitlines()
    head = json.loads(lines[0])
    assert head["format"] == 1
    last_commit = json.loads(next(x for x in reversed(lines) if x.startswith(b'{"commit"')))
    expected = sessions()[sid]
    entry_lines = [json.dumps(json.loads(x)["e"]) for x in lines if x.startswith(b'{"@"')]
    entries = [entry_from_json(x) for x in entry_lines]
    assert entries == expected.entries
    if not any(isinstance(e, OpaqueEntry) for e in entries):  # the bulk path: all or nothing
        records = [e for e in entry_records_from_json_lines(data, "e") if e is not None]
        assert records == expected.entries
    rebuilt = Session(**header_from_dict(last_commit["commit"]), entries=entries)
    assert rebuilt == expected


def test_sqlite_rows_decode_with_the_codec_alone() -> None:
    db = sqlite3.connect(f"file:{FIXTURES / 'sqlite' / 'sessions.db'}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert "entries" in tables, tables
        for sid, expected in sessions().items():
            rows = db.execute(
                "select data from entries where session_id = ? order by seq", (sid,)
            ).fetchall()
            assert [entry_from_json(r[0]) for r in rows] == expected.entries
    finally:
        db.close()


def test_a_whole_session_dict_rebuilds_the_session() -> None:
    for expected in sessions().values():
        lines = (FIXTURES / "fs" / f"{expected.id}.jsonl").read_bytes().splitlines()
        commit = json.loads(next(x for x in reversed(lines) if x.startswith(b'{"commit"')))
        entries = [json.loads(x)["e"] for x in lines if x.startswith(b'{"@"')]
        assert session_from_dict({**commit["commit"], "entries": entries}) == expected


async def _check_store(store: object, tmp: Path) -> None:
    from spectra_core import SessionStore

    assert isinstance(store, SessionStore)
    expected = sessions()
    manager = SessionManager(store)
    async with store:
        for sid in SESSION_IDS:
            loaded = await manager.load(sid)
            assert loaded == expected[sid]
            assert loaded.unsaved_entries == []
            for tail in (None, 1, 3):
                branch = await manager.load(sid, active_branch=True, tail=tail)
                want = trim_to_active_branch(sessions()[sid], tail)
                assert branch.entries == want.entries, (sid, tail)
        infos = {i.id for i in await manager.list()}
        assert infos == set(SESSION_IDS)
        # the new release appends to what the old one wrote
        main = await manager.load("fixture-main")
        added = manager.append_message(main, UserMessage("appended by the new release"))
        await manager.save(main)
        again = await manager.load("fixture-main")
        assert again.entries == [*expected["fixture-main"].entries, added]
        assert again.version == expected["fixture-main"].version + 1


@pytest.mark.needs_plugins
async def test_the_fs_store_loads_the_format1_directory(tmp_path: Path) -> None:
    from spectra_fs import FileSystemSessionStore

    shutil.copytree(FIXTURES / "fs", tmp_path / "fs")
    await _check_store(FileSystemSessionStore(tmp_path / "fs"), tmp_path)


@pytest.mark.needs_plugins
async def test_the_sqlite_store_loads_the_format1_database(tmp_path: Path) -> None:
    from spectra_sqlite import SQLiteSessionStore

    shutil.copy(FIXTURES / "sqlite" / "sessions.db", tmp_path / "sessions.db")
    await _check_store(SQLiteSessionStore(tmp_path / "sessions.db"), tmp_path)
