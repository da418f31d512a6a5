"""The listing index is not fsynced: what an OS crash can take from it is repaired by the
first process of the next boot, from the session files' stamps (stat, no reads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from spectra_core import SessionManager
from spectra_fs import FileSystemSessionStore, _index

INDEX = "index.sqlite3"


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.glob(f"{INDEX}*")}


def _restore(directory: Path, snapshot: dict[str, bytes]) -> None:
    """The index as the disk held it: its later (never fsynced) writes are gone."""
    for p in directory.glob(f"{INDEX}*"):
        p.unlink()
    for name, data in snapshot.items():
        (directory / name).write_bytes(data)


async def _listed(directory: Path) -> dict[str, int]:
    async with FileSystemSessionStore(directory) as store:
        return {i.id: i.version for i in await store.list()}


async def _history(directory: Path) -> dict[str, bytes]:
    """Sessions a (v2) and gone (v1) with the index closed; then a -> v4, new, gone
    deleted; returns the index files as they were before the second step."""
    async with FileSystemSessionStore(directory) as store:
        m = SessionManager(store)
        a = await m.create(session_id="a")
        m.append_message(a, "one")
        await m.save(a)
        await m.create(session_id="gone")
    snapshot = _snapshot(directory)
    async with FileSystemSessionStore(directory) as store:
        m = SessionManager(store)
        a = await m.load("a")
        for text in ("two", "three"):
            m.append_message(a, text)
            await m.save(a)
        await m.create(session_id="new")
        await m.delete("gone")
    assert await _listed(directory) == {"a": 4, "new": 1}
    return snapshot


async def test_index_writes_lost_in_an_os_crash_are_repaired_in_the_next_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "sessions"
    snapshot = await _history(directory)
    _restore(directory, snapshot)
    # Same boot: such a loss cannot happen (the OS kept every write), and nothing is checked.
    assert await _listed(directory) == {"a": 2, "gone": 1}

    _restore(directory, snapshot)
    monkeypatch.setattr(_index, "boot_id", lambda: "the-next-boot")
    with capture_logs() as logs:
        assert await _listed(directory) == {"a": 4, "new": 1}
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["sessions"] == 3  # a changed, new has no row, gone has no file
    with capture_logs() as logs:  # checked once per boot
        assert await _listed(directory) == {"a": 4, "new": 1}
    assert not [e for e in logs if e["log_level"] == "warning"]


async def test_index_damaged_by_an_os_crash_is_rebuilt_in_the_next_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "sessions"
    async with FileSystemSessionStore(directory) as store:
        m = SessionManager(store)
        for n in range(80):
            await m.create(session_id=f"s{n:03d}", user_id=f"user-{n}")
    data = bytearray((directory / INDEX).read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[-2 * page + 200 : -2 * page + 600] = b"\x5a" * 400  # a torn page deep in the file
    (directory / INDEX).write_bytes(bytes(data))
    monkeypatch.setattr(_index, "boot_id", lambda: "the-next-boot")
    with capture_logs() as logs:
        listed = await _listed(directory)
    assert listed == {f"s{n:03d}": 1 for n in range(80)}
    assert any("corrupt" in e["event"] for e in logs)
    assert (directory / f"{INDEX}.corrupt").exists()


async def test_without_a_boot_id_markers_are_fsynced_and_nothing_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_index, "boot_id", lambda: None)
    directory = tmp_path / "sessions"
    snapshot = await _history(directory)
    _restore(directory, snapshot)
    # Without a boot id a lost index write cannot be told from a kept one: the store
    # keeps synchronous=NORMAL and fsyncs the markers, so this loss cannot happen there.
    assert await _listed(directory) == {"a": 2, "gone": 1}
    async with FileSystemSessionStore(directory) as store:
        index = store._index
        await store.list()
        assert index._sync == "NORMAL" and index._sync_markers
