"""Real processes: a writer killed with SIGKILL (two writers on one session and a store
never closed: the conformance suite)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spectra_sqlite import SQLiteSessionStore

OpenStore = Callable[..., SQLiteSessionStore]
WRITER = str(Path(__file__).with_name("_writer.py"))
TIMEOUT = 120


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        ((result,),) = conn.execute("PRAGMA integrity_check").fetchall()
        return str(result)
    finally:
        conn.close()


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WRITER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_sigkill_never_loses_an_acknowledged_save(
    open_store: OpenStore, db_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    acked: dict[str, int] = {}
    top = 0
    for round_ in range(20):
        proc = _spawn("crash", str(db_path), "crashy")
        assert proc.stdout is not None
        wanted = rng.randint(1, 25)
        lines: list[str] = []
        while len(lines) < wanted:
            line = proc.stdout.readline()
            if not line:
                _, err = proc.communicate(timeout=TIMEOUT)
                pytest.fail(f"writer died early (seed {seed}): {err}")
            lines.append(line)
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL
        for line in [*lines, *rest.splitlines()]:
            version, entry_id = line.split()
            acked[entry_id] = int(version)
            top = max(top, int(version))
        store = open_store()
        loaded = await store.load("crashy")
        ids = {e.id for e in loaded.entries}
        missing = set(acked) - ids
        assert not missing, f"round {round_} (seed {seed}): lost acknowledged {missing}"
        assert loaded.version >= top
        assert len(loaded.entries) == loaded.version - 1
        assert (await store.load_branch("crashy", tail=3)).entries == loaded.entries[-3:]
        await store.aclose()
        assert _integrity(db_path) == "ok", f"round {round_} (seed {seed})"
