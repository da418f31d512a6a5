"""Real OS processes sharing one Redis: the limiter and the store stay exact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spectra_core import MessageEntry
from spectra_core.manager import SessionManager
from spectra_redis import RedisSessionStore
from spectra_sqlite import SQLiteSessionStore

WORKER = str(Path(__file__).with_name("_worker.py"))
TIMEOUT = 180


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _outputs(procs: list[subprocess.Popen[str]]) -> list[int]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, stderr
        out.append(int(stdout.strip()))
    return out


async def test_two_processes_admit_exactly_the_limit(redis_url: str, prefix: str) -> None:
    procs = [_spawn("limit", redis_url, prefix, "100") for _ in range(2)]
    admitted = _outputs(procs)
    assert sum(admitted) == 60, admitted


@pytest.mark.parametrize("cold", [False, True], ids=["redis", "with-cold-store"])
async def test_two_processes_on_one_session_lose_nothing(
    redis_url: str, prefix: str, tmp_path: Path, cold: bool
) -> None:
    db = str(tmp_path / "cold.db") if cold else ""
    store = RedisSessionStore(
        redis_url, key_prefix=prefix, cold_store=SQLiteSessionStore(db) if cold else None
    )
    async with store:
        manager = SessionManager(store)
        s = await manager.create(session_id="shared")
        n = 200
        procs = [
            _spawn("race", redis_url, prefix, s.id, tag, str(n), *([db] if cold else []))
            for tag in "ab"
        ]
        conflicts = sum(_outputs(procs))
        loaded = await store.load(s.id)
        texts = [e.message.text for e in loaded.entries if isinstance(e, MessageEntry)]
        assert sorted(texts) == sorted(f"{t}-{i}" for t in "ab" for i in range(n))
        assert loaded.version == 2 * n + 1
        assert [e.parent_id for e in loaded.entries[1:]] == [e.id for e in loaded.entries[:-1]]
        if cold:
            assert await store._cold().load(s.id) == loaded
        print(f"conflicts retried: {conflicts}")
