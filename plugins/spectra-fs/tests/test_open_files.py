"""Session files kept open between saves: reused only while nobody else changed them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from spectra_core import ConflictError, MessageEntry, Session, SessionManager
from spectra_core.testing import FakeClock
from spectra_fs import FileSystemSessionStore


def _texts(s: Session) -> list[str]:
    return [e.message.text for e in s.entries if isinstance(e, MessageEntry)]


async def _saved(manager: SessionManager, s: Session, *texts: str) -> None:
    for text in texts:
        manager.append_message(s, text)
        await manager.save(s)


async def test_append_by_another_writer_is_seen_through_the_kept_file(directory: Path) -> None:
    async with (
        FileSystemSessionStore(directory) as one,
        FileSystemSessionStore(directory) as two,
    ):
        m1, m2 = SessionManager(one, clock=FakeClock()), SessionManager(two, clock=FakeClock())
        mine = await m1.create(session_id="s")
        await _saved(m1, mine, "a", "b")  # one keeps the file open, at version 3
        assert "s" in one._files
        theirs = await m2.load("s")
        await _saved(m2, theirs, "c")  # version 4, written by the other store
        m1.append_message(mine, "lost?")
        with pytest.raises(ConflictError) as info:
            await m1.save(mine)
        assert (info.value.expected_version, info.value.actual_version) == (3, 4)
        fresh = await m1.load("s")
        await _saved(m1, fresh, "d")
        loaded = await two.load("s")
        assert _texts(loaded) == ["a", "b", "c", "d"] and loaded.version == 5
        assert {i.id: i.version for i in await two.list()} == {"s": 5}
        assert {i.id: i.version for i in await one.list()} == {"s": 5}


async def test_file_deleted_and_recreated_with_the_same_bytes(directory: Path) -> None:
    """Same size, same version, new inode: the kept descriptor points at the deleted
    file, so the save must reopen the path (else the entry went to an orphan)."""
    async with (
        FileSystemSessionStore(directory) as one,
        FileSystemSessionStore(directory) as two,
    ):
        m1 = SessionManager(one, clock=FakeClock())
        s = await m1.create(session_id="s")
        await _saved(m1, s, "a")
        path = one.path_of("s")
        copy = directory.parent / "copy"
        shutil.copyfile(path, copy)
        await two.delete("s")
        os.link(copy, path)  # another writer recreated it, byte for byte
        assert path.stat().st_size == one._files["s"].size
        await _saved(m1, s, "b")
        assert _texts(await two.load("s")) == ["a", "b"]
        assert {i.id: i.version for i in await two.list()} == {"s": 3}


async def test_file_deleted_by_another_writer(directory: Path) -> None:
    async with (
        FileSystemSessionStore(directory) as one,
        FileSystemSessionStore(directory) as two,
    ):
        m1 = SessionManager(one, clock=FakeClock())
        s = await m1.create(session_id="s")
        await _saved(m1, s, "a")
        await two.delete("s")
        m1.append_message(s, "b")
        with pytest.raises(ConflictError) as info:
            await m1.save(s)
        assert info.value.actual_version is None
        assert not one.path_of("s").exists()
        assert await one.list() == await two.list()
        assert not (await one.list()).sessions


async def test_torn_end_left_by_another_writer_is_cut_before_appending(
    directory: Path,
) -> None:
    async with FileSystemSessionStore(directory) as store:
        m = SessionManager(store, clock=FakeClock())
        s = await m.create(session_id="s")
        await _saved(m, s, "a")
        with store.path_of("s").open("ab") as f:  # a writer killed mid-append
            f.write(b'{"@":[-1,-1,0],"e":{"type":"message","text":"' + b"x" * 20_000)
        await _saved(m, s, "b")
        loaded = await store.load("s")
        assert _texts(loaded) == ["a", "b"] and loaded.version == 3
        assert store.path_of("s").read_bytes().endswith(b'"count":2}\n')  # nothing torn left


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_kept_files_are_bounded_and_closed(directory: Path) -> None:
    before = _open_fds()
    store = FileSystemSessionStore(directory)
    store._max_open = 3
    m = SessionManager(store, clock=FakeClock())
    sessions = [await m.create(session_id=f"s{n}") for n in range(5)]
    for s in sessions:
        await _saved(m, s, "a")
    assert list(store._files) == ["s2", "s3", "s4"]  # the least recently saved closed
    await _saved(m, sessions[0], "b")
    assert list(store._files) == ["s3", "s4", "s0"]
    await m.delete("s3")
    assert list(store._files) == ["s4", "s0"]
    await store.aclose()
    assert not store._files
    assert _open_fds() == before
    async with FileSystemSessionStore(directory) as again:
        assert {i.id: i.version for i in await again.list()} == {
            "s0": 3,
            "s1": 2,
            "s2": 2,
            "s4": 2,
        }
        assert again._index.pending() == []  # a clean close leaves no markers


async def test_appends_leave_a_marker_that_list_turns_into_the_row(directory: Path) -> None:
    clock = FakeClock()
    async with FileSystemSessionStore(directory) as store:
        m = SessionManager(store, clock=clock)
        s = await m.create(session_id="s", user_id="u")
        assert store._index.pending() == []
        clock.advance(5)
        await _saved(m, s, "a", "b")
        # The append did not touch the row; its marker says the row may be behind.
        assert [sid for _t, sid in store._index.pending()] == ["s"]
        (info,) = (await store.list()).sessions
        assert (info.version, info.user_id, info.updated_at) == (3, "u", s.updated_at)
        assert store._index.pending() == []
        await _saved(m, s, "c")  # the marker is back before the file changes
        assert [sid for _t, sid in store._index.pending()] == ["s"]
    async with FileSystemSessionStore(directory) as again:
        assert again._index.pending() == []  # the clean close brought the row up to date
        (info,) = (await again.list()).sessions
        assert info.version == 4
