"""Bad surroundings: a read-only folder and a full disk, on real (tmpfs) mounts.

Tests run as root in CI, where permission bits do not stop writes, so a read-only folder
is a read-only tmpfs mount and a full disk is a small tmpfs. Without root, the read-only
case falls back to permission bits (which then do stop writes).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spectra_core import MessageEntry, Session, SessionManager, StoreError
from spectra_core.testing import FakeClock
from spectra_sqlite import SQLiteSessionStore

IS_ROOT = os.geteuid() == 0
Mount = Callable[[Path, str], None]


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def tmpfs() -> Iterator[Mount]:
    """``tmpfs(folder, options)`` mounts a tmpfs there (root only); unmounted at the end."""
    mounted: list[Path] = []

    def mount(folder: Path, options: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder))
        mounted.append(folder)

    yield mount
    for folder in reversed(mounted):
        try:
            _run("umount", str(folder))
        except subprocess.CalledProcessError:
            _run("umount", "-l", str(folder))


def _make_read_only(folder: Path, tmpfs: Mount) -> None:
    if IS_ROOT:
        _run("mount", "-o", "remount,ro", str(folder))
    else:
        folder.chmod(0o500)
        for child in folder.iterdir():
            child.chmod(0o400)


def _make_writable(folder: Path) -> None:
    if IS_ROOT:
        _run("mount", "-o", "remount,rw", str(folder))
    else:
        folder.chmod(0o700)
        for child in folder.iterdir():
            child.chmod(0o600)


def _texts(s: Session) -> list[str]:
    return [e.message.text for e in s.entries if isinstance(e, MessageEntry)]


async def test_new_database_in_a_read_only_folder(tmp_path: Path, tmpfs: Mount) -> None:
    folder = tmp_path / "ro"
    if IS_ROOT:
        tmpfs(folder, "ro,size=1m")
    else:
        folder.mkdir()
        folder.chmod(0o500)
    db = folder / "sessions.db"
    async with SQLiteSessionStore(db) as store:
        with pytest.raises(StoreError) as info:
            await store.ping()
    message = str(info.value)
    assert str(db) in message and "writable" in message
    print(message)
    assert not db.exists()


async def test_existing_database_in_a_folder_turned_read_only(tmp_path: Path, tmpfs: Mount) -> None:
    folder = tmp_path / "data"
    if IS_ROOT:
        tmpfs(folder, "rw,size=4m,mode=0700")
    else:
        folder.mkdir()
    db = folder / "sessions.db"
    async with SQLiteSessionStore(db) as store:
        manager = SessionManager(store, clock=FakeClock())
        s = await manager.create(user_id="u")
        manager.append_message(s, "kept")
        await manager.save(s)

    _make_read_only(folder, tmpfs)
    try:
        async with SQLiteSessionStore(db) as store:
            manager = SessionManager(store, clock=FakeClock())
            manager.append_message(s, "cannot be written")
            with pytest.raises(StoreError) as info:
                await manager.save(s)
            assert str(db) in str(info.value) and "writable" in str(info.value)
            print(info.value)
            assert s.version == 2 and len(s.unsaved_entries) == 1
    finally:
        _make_writable(folder)

    async with SQLiteSessionStore(db) as store:
        loaded = await store.load(s.id)
        assert loaded.version == 2 and _texts(loaded) == ["kept"]
        await SessionManager(store).save(s)  # the same copy saves once writable again
        assert _texts(await store.load(s.id)) == ["kept", "cannot be written"]


async def test_full_disk_during_save(tmp_path: Path, tmpfs: Mount) -> None:
    if not IS_ROOT:
        pytest.skip("filling a disk needs a small tmpfs, which needs root (CI runs as root)")
    folder = tmp_path / "small"
    tmpfs(folder, "size=1m,mode=0700")
    filler = folder / "filler"
    filler.write_bytes(b"\0" * 256 * 1024)  # freed later to make room again
    db = folder / "sessions.db"
    payload = "y" * 40_000
    async with SQLiteSessionStore(db) as store:
        manager = SessionManager(store, clock=FakeClock())
        other = await manager.create(session_id="other")
        s = await manager.create(session_id="filling")
        acked: list[str] = []
        error = None
        for i in range(100):
            entry = manager.append_message(s, f"{i}:{payload}")
            try:
                await manager.save(s)
            except StoreError as exc:
                error = exc
                break
            acked.append(entry.message.text)
        assert error is not None, "the disk never filled up"
        assert str(db) in str(error) and "full" in str(error)
        print(error)
        assert s.version == len(acked) + 1 and len(s.unsaved_entries) == 1

        # nothing acknowledged is lost, the failed save left no trace, others still load
        async with SQLiteSessionStore(db) as reader:
            loaded = await reader.load(s.id)
            assert _texts(loaded) == acked and loaded.version == s.version
            assert (await reader.load(other.id)).version == 1

        filler.unlink()
        await manager.save(s)
        assert _texts(await store.load(s.id)) == [*acked, f"{len(acked)}:{payload}"]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
