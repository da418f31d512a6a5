"""Real disk failures: a full file system (a small tmpfs) and a read-only directory (a
read-only bind mount). Mounting needs root; elsewhere these tests skip saying so."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spectra_core import MessageEntry, Session, SessionManager, StoreError
from spectra_fs import FileSystemSessionStore


def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a read-only bind needs root (the test runs as non-root)")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {done.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable directory, the same directory mounted read-only)."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    _mount("--bind", str(rw), str(ro))
    try:
        _mount("-o", "remount,ro,bind", str(ro))
        yield rw, ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=True)


def _texts(s: Session) -> list[str]:
    return [e.message.text for e in s.entries if isinstance(e, MessageEntry)]


async def test_disk_full_during_append_leaves_the_session_as_it_was(small_fs: Path) -> None:
    directory = small_fs / "sessions"
    async with FileSystemSessionStore(directory) as store:
        manager = SessionManager(store)
        s = await manager.create(session_id="full")
        manager.append_message(s, "kept")
        await manager.save(s)
        await store.list()
        path = store.path_of("full")
        size_before = path.stat().st_size
        filler = small_fs / "filler"
        st = os.statvfs(small_fs)  # leave roughly 64 KiB free
        filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - 64 * 1024))
        manager.append_message(s, "too big " + "z" * 200_000)
        with pytest.raises(StoreError, match="No space left") as info:
            await manager.save(s)
        assert "'full'" in str(info.value) and str(path) in str(info.value)
        assert path.stat().st_size == size_before  # truncated back to the last commit
        assert s.version == 2 and len(s.unsaved_entries) == 1  # nothing acknowledged
        reloaded = await store.load("full")
        assert _texts(reloaded) == ["kept"] and reloaded.version == 2
        # The failed save had stored its row (version 3) before writing; its marker
        # makes list re-read the file.
        assert [i.version for i in await store.list()] == [2]
        filler.unlink()  # space again: the same copy saves fine
        await manager.save(s)
        assert _texts(await store.load("full")) == ["kept", "too big " + "z" * 200_000]
        assert [i.version for i in await store.list()] == [3]


async def test_read_only_directory_gives_a_clear_error(read_only: tuple[Path, Path]) -> None:
    rw, ro = read_only
    async with FileSystemSessionStore(rw) as writer:
        manager = SessionManager(writer)
        s = await manager.create(session_id="archived")
        manager.append_message(s, "old")
        await manager.save(s)
    async with FileSystemSessionStore(ro) as store:
        assert _texts(await store.load("archived")) == ["old"]  # reading still works
        assert (await store.load_branch("archived")).version == 2
        manager = SessionManager(store)
        with pytest.raises(StoreError, match="Read-only file system") as info:
            await manager.create(session_id="new-one")
        assert "'new-one'" in str(info.value)
        copy = await store.load("archived")
        manager.append_message(copy, "new")
        with pytest.raises(StoreError, match="Read-only file system"):
            await manager.save(copy)
        with pytest.raises(StoreError, match="Read-only file system"):
            await store.delete("archived")
        with pytest.raises(StoreError, match="listing index"):
            await store.list()
    async with FileSystemSessionStore(rw) as writer:
        assert _texts(await writer.load("archived")) == ["old"]


async def test_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="session directory"):
        FileSystemSessionStore(blocker / "sessions")
    with pytest.raises(StoreError, match="not a directory"):
        FileSystemSessionStore(blocker)
