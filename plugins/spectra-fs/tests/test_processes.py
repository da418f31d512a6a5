"""Real processes: writers killed with SIGKILL at random moments, and killed around a save
(two writers on one session: the conformance suite)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

from spectra_fs import FileSystemSessionStore

WRITER = str(Path(__file__).with_name("_writer.py"))
TIMEOUT = 60


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WRITER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_sigkill_at_random_moments_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    rng = random.Random(20240601)
    acked: dict[str, set[str]] = {"crash-a": set(), "crash-b": set()}
    versions: dict[str, int] = {"crash-a": 0, "crash-b": 0}
    for round_ in range(20):
        proc = _spawn("crash", str(directory), str(round_))
        assert proc.stdout is not None
        for _ in range(rng.randrange(1, 12)):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer exited"
            sid, entry_id, version = line.split()
            if entry_id != "-":
                acked[sid].add(entry_id)
            versions[sid] = max(versions[sid], int(version))
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        async with FileSystemSessionStore(directory) as store:
            for sid, ids in acked.items():
                if not versions[sid]:
                    continue
                loaded = await store.load(sid)
                assert ids <= {e.id for e in loaded.entries}, f"round {round_}: {sid} lost entries"
                assert loaded.version >= versions[sid]
                branch = await store.load_branch(sid, tail=3)
                assert branch.version == loaded.version
                assert [e.id for e in branch.entries] == [e.id for e in loaded.entries[-3:]]
            listed = {i.id: i.version for i in await store.list()}
            for sid in listed:
                assert listed[sid] == (await store.load(sid)).version, "index lags the files"
    assert all(len(ids) > 20 for ids in acked.values())


async def test_process_killed_right_after_a_save_returned(tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    async with FileSystemSessionStore(directory) as store:
        from spectra_core import SessionManager

        await SessionManager(store).create(session_id="s1")
        assert [i.version for i in await store.list()] == [1]
        proc = _spawn("die-after-save", str(directory), "s1")
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 9, err
        assert (await store.load("s1")).version == 2
        assert [i.version for i in await store.list()] == [2]


async def test_process_killed_after_the_index_row_before_the_file_write(tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    async with FileSystemSessionStore(directory) as store:
        from spectra_core import SessionManager

        s = await SessionManager(store).create(session_id="s1")
        SessionManager(store).append_message(s, "one")
        await store.save(s)
        assert [i.version for i in await store.list()] == [2]
        proc = _spawn("die-before-write", str(directory), "s1")
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 9, err
        assert (await store.load("s1")).version == 2
        # The dead process's row said version 3; its marker makes list re-read the file.
        assert [i.version for i in await store.list()] == [2]
        SessionManager(store).append_message(s, "two")
        await store.save(s)  # the file kept open since the first save is still valid
        assert [i.version for i in await store.list()] == [3]
        assert [e.id for e in (await store.load("s1")).entries] == [e.id for e in s.entries]
