"""The file format, torn tails, corrupt and foreign files, migration, permissions."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from spectra_core import (
    InvalidArgumentError,
    InvalidIdError,
    MessageEntry,
    Session,
    SessionManager,
    StoreError,
    load_plugins,
)
from spectra_core.plugins import BackendKind, module_source
from spectra_core.serde import FORMAT_VERSION, entry_to_dict, header_to_dict
from spectra_core.testing import every_entry_kind
from spectra_fs import FileSystemSessionStore, FsStoreOptions, _plugin
from spectra_fs._store import _read_clean


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _texts(s: Session) -> list[str]:
    return [e.message.text for e in s.entries if isinstance(e, MessageEntry)]


async def test_file_is_a_header_then_entries_and_commits_appended(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    s = await manager.create(session_id="s1", user_id="u")
    path = store.path_of("s1")
    size_after_create = path.stat().st_size
    before = path.read_bytes()
    manager.append_message(s, "one")
    manager.append_message(s, "two")
    await manager.save(s)
    after = path.read_bytes()
    assert after.startswith(before)  # appended, never rewritten
    recs = _lines(path)
    assert recs[0]["spectra"] == "session" and recs[0]["format"] == FORMAT_VERSION
    assert [sorted(r) for r in recs[1:]] == [
        ["commit", "count", "leaf"],
        ["@", "e"],
        ["@", "e"],
        ["commit", "count", "leaf"],
    ]
    last = recs[-1]
    assert isinstance(last["commit"], dict) and last["commit"]["version"] == 2
    assert last["count"] == 2 and last["leaf"] == size_after_create + len(after.splitlines()[2]) + 1
    # a save costs the same whatever the session's length
    manager.append_message(s, "three")
    await manager.save(s)
    grew = path.stat().st_size - len(after)
    for i in range(50):
        manager.append_message(s, f"m{i}")
        await manager.save(s)
    manager.append_message(s, "three")
    before_last = path.stat().st_size
    await manager.save(s)
    assert abs(path.stat().st_size - before_last - grew) <= 8  # only offsets gain digits


async def test_plugin_registers_backend_fs(directory: Path) -> None:
    registry = load_plugins([module_source(_plugin, "spectra-fs")])
    backend = registry.get(BackendKind.SESSION_STORE, "fs")
    assert backend.options is FsStoreOptions
    store = backend.create(FsStoreOptions(directory=str(directory), durability="none"))
    assert isinstance(store, FileSystemSessionStore) and store.durability == "none"
    await store.aclose()
    with pytest.raises(ValueError, match="durability"):
        FsStoreOptions(directory="x", durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        FileSystemSessionStore(directory, durability="maybe")  # type: ignore[arg-type]


async def test_durability_none_round_trips(directory: Path) -> None:
    async with FileSystemSessionStore(directory, durability="none") as store:
        m = SessionManager(store)
        s = await m.create()
        m.append_message(s, "hi")
        await m.save(s)
        assert _texts(await store.load(s.id)) == ["hi"]


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a\x00b", "x" * 300, "..", ".tmp-x"])
async def test_bad_ids_never_reach_a_path(
    store: FileSystemSessionStore, directory: Path, bad: str
) -> None:
    with pytest.raises(InvalidIdError):
        store.path_of(bad)
    with pytest.raises(InvalidIdError):
        await store.load_branch(bad)
    now = Session(id="ok", created_at=_epoch(), updated_at=_epoch())
    now.id = bad
    with pytest.raises(InvalidIdError):
        await store.save(now)
    assert sorted(p.name for p in directory.parent.rglob("*") if p.suffix == ".jsonl") == []


def _epoch() -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC)


async def test_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        directory = tmp_path / "a" / "b"
        async with FileSystemSessionStore(directory) as store:
            m = SessionManager(store)
            s = await m.create()
            m.append_message(s, "secret")
            await m.save(s)
            await store.list()
    finally:
        os.umask(old)
    for d in (tmp_path / "a", directory):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    files = list(directory.iterdir())
    assert {f.name for f in files} >= {f"{s.id}.jsonl", "index.sqlite3"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


# --- torn tails -------------------------------------------------------------------------


async def _three_saves(manager: SessionManager) -> tuple[Session, list[int]]:
    s = await manager.create(session_id="torn")
    sizes = []
    for text in ("a", "b", "c"):
        manager.append_message(s, text)
        await manager.save(s)
        sizes.append(manager.store.path_of(s.id).stat().st_size)  # type: ignore[attr-defined]
    return s, sizes


@pytest.mark.parametrize("cut", [1, 5, 40])
async def test_torn_last_save_is_dropped_with_a_warning_then_truncated(
    manager: SessionManager, store: FileSystemSessionStore, cut: int
) -> None:
    s, sizes = await _three_saves(manager)
    path = store.path_of(s.id)
    os.truncate(path, sizes[-1] - cut)  # the last save lost its end (no complete commit)
    with capture_logs() as logs:
        loaded = await store.load(s.id)
        branch = await store.load_branch(s.id)
    assert _texts(loaded) == ["a", "b"] and loaded.version == 3
    assert _texts(branch) == ["a", "b"] and branch.version == 3
    assert any("torn" in log["event"] for log in logs)
    manager.append_message(loaded, "d")
    with capture_logs() as logs:
        await manager.save(loaded)
    assert any("truncating" in log["event"] for log in logs)
    assert all(isinstance(r, dict) for r in _lines(path))  # well-formed again
    assert _texts(await store.load(s.id)) == ["a", "b", "d"]


async def test_entries_without_commit_are_dropped(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    s, _ = await _three_saves(manager)
    path = store.path_of(s.id)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # entry line complete, commit missing
    with capture_logs() as logs:
        loaded = await store.load(s.id)
    assert _texts(loaded) == ["a", "b"]
    assert logs and logs[0]["log_level"] == "warning" and logs[0]["session_id"] == s.id


# --- corrupt and foreign files ----------------------------------------------------------


async def _two_sessions(manager: SessionManager) -> tuple[Session, Session]:
    good = await manager.create(session_id="good")
    bad = await manager.create(session_id="bad")
    for s in (good, bad):
        manager.append_message(s, "x")
        await manager.save(s)
        manager.append_message(s, "y")
        await manager.save(s)
    return good, bad


async def _assert_broken(store: FileSystemSessionStore, match: str) -> None:
    path = store.path_of("bad")
    for load in (store.load, store.load_branch):
        with pytest.raises(StoreError, match=match) as info:
            await load("bad")
        assert "'bad'" in str(info.value) and str(path) in str(info.value)
    assert _texts(await store.load("good")) == ["x", "y"]
    assert {i.id for i in await store.list()} >= {"good"}


async def test_bad_json_in_the_middle(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    await _two_sessions(manager)
    path = store.path_of("bad")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"@":[0,-1,0],"e":{not json\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(StoreError, match="not a valid record"):
        await store.load("bad")
    assert _texts(await store.load("good")) == ["x", "y"]


async def test_future_format_is_refused(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    await _two_sessions(manager)
    path = store.path_of("bad")
    lines = path.read_bytes().splitlines(keepends=True)
    head = json.loads(lines[0])
    head["format"] = FORMAT_VERSION + 1
    path.write_bytes(json.dumps(head).encode() + b"\n" + b"".join(lines[1:]))
    await _assert_broken(store, "newer than this release")


@pytest.mark.parametrize("content", [b"", b'{"type":"message","id":"x"}\n', b"garbage\n"])
async def test_missing_header_is_refused(
    manager: SessionManager, store: FileSystemSessionStore, content: bytes
) -> None:
    await _two_sessions(manager)
    store.path_of("bad").write_bytes(content)
    await _assert_broken(store, "header|JSON")


async def test_file_of_another_session_is_refused(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    await _two_sessions(manager)
    store.path_of("bad").write_bytes(store.path_of("good").read_bytes())
    await _assert_broken(store, "holds session 'good'")


# --- migration --------------------------------------------------------------------------


async def test_format_0_file_is_migrated_forward(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    s = await manager.create(session_id="legacy", user_id="old-user")
    manager.append_message(s, "first")
    manager.append_model_change(s, "m-2")
    manager.append_message(s, "second")
    s.mark_saved(7)
    header = header_to_dict(s)
    header.pop("partial")
    v0 = [json.dumps(header)] + [json.dumps(entry_to_dict(e)) for e in s.entries]
    path = store.path_of("legacy")
    path.write_text("\n".join(v0) + "\n")
    assert await store.rebuild_index() == 1
    assert [(i.id, i.version) for i in await store.list()] == [("legacy", 7)]
    with capture_logs() as logs:
        loaded = await store.load("legacy")
    assert any(log["event"] == "migrated session file" for log in logs)
    assert loaded == s
    assert _lines(path)[0]["format"] == FORMAT_VERSION
    part = await store.load_branch("legacy", tail=1)
    assert _texts(part) == ["second"] and part.partial is not None
    assert part.partial.model is not None and part.partial.model.id == "m-2"
    manager.append_message(loaded, "third")
    await manager.save(loaded)
    assert _texts(await store.load("legacy")) == ["first", "second", "third"]


# --- the listing index ------------------------------------------------------------------


async def test_list_reads_the_index_not_the_files(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    made = [await manager.create(user_id="u") for _ in range(3)]
    for s in made:  # make the files unreadable as sessions: list must not care
        store.path_of(s.id).write_bytes(b"garbage\n")
    assert {i.id for i in await store.list()} == {s.id for s in made}


async def test_missing_or_corrupt_index_is_rebuilt(
    manager: SessionManager, store: FileSystemSessionStore, directory: Path
) -> None:
    made = [await manager.create(user_id=f"u{i}") for i in range(4)]
    expected = [(i.id, i.version) for i in await store.list()]
    await store.aclose()
    for name in ("index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"):
        (directory / name).unlink(missing_ok=True)
    async with FileSystemSessionStore(directory) as fresh:
        assert [(i.id, i.version) for i in await fresh.list()] == expected
    (directory / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    for name in ("index.sqlite3-wal", "index.sqlite3-shm"):
        (directory / name).unlink(missing_ok=True)
    with capture_logs() as logs:
        async with FileSystemSessionStore(directory) as fresh:
            assert [(i.id, i.version) for i in await fresh.list()] == expected
            s = await SessionManager(fresh).load(made[0].id)
            SessionManager(fresh).append_message(s, "after rebuild")
            await fresh.save(s)
            assert (await fresh.list()).sessions[0].version == 2
    assert any("corrupt" in log["event"] for log in logs)


async def test_rebuild_index_picks_up_copied_and_removed_files(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    a = await manager.create(session_id="a")
    await manager.create(session_id="b")
    store.path_of("b").unlink()
    store.path_of("c").write_bytes(store.path_of("a").read_bytes().replace(b'"a"', b'"c"'))
    assert await store.rebuild_index() == 2
    assert sorted(i.id for i in await store.list()) == ["a", "c"]
    assert (await store.load("c")).created_at == a.created_at


async def test_the_one_call_and_the_line_by_line_readings_agree(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    """A file of complete saves in the usual form is decoded in one call; any other file
    line by line. Both give the same commit and entries."""
    s = await manager.create({"model": {"id": "m"}}, user_id="u")
    for i in range(4):
        manager.append_message(s, f"m{i}")
        manager.append_audit(s, "run_finished", {"i": i})
        await manager.save(s)
    path = store.path_of(s.id)
    data = path.read_bytes()
    clean = _read_clean(data)
    assert clean is not None
    assert clean == store._read_careful(path, data)
    assert await store.load(s.id) == s
    # a blank line, or a kind this release does not know: line by line, same session
    lines = data.splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:3], b"\n", *lines[3:]]))
    assert _read_clean(path.read_bytes()) is None
    with pytest.raises(StoreError, match="line 4 is not a valid record"):
        await store.load(s.id)
    # an entry without its "@" offsets is not a record of this format, in either reading
    unframed = lines[2].replace(b'{"@":', b'{"at":', 1)
    path.write_bytes(b"".join([*lines[:2], unframed, *lines[3:]]))
    assert _read_clean(path.read_bytes()) is None
    with pytest.raises(StoreError, match="line 3 is not a valid record"):
        await store.load(s.id)
    path.write_bytes(data)
    every_entry_kind(manager, s)  # ends with an entry of a kind from the future
    await manager.save(s)
    assert _read_clean(path.read_bytes()) is None
    assert await store.load(s.id) == s
