"""``spectra worker`` as a real subprocess on Redis: it runs queued turns through the
configured engine (store, echo model) in each session's order, and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spectra_core import MessageEntry, SessionManager
from spectra_core.workers import JobStatus, SequentialWorkerPool
from spectra_redis import RedisJobQueue, RedisSessionStore

DEADLINE = 60.0


def _worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "spectra_core", "worker", "-c", str(cfg), "--concurrency", "3"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPECTRA_DISABLE_PLUGINS": ""},
        )


async def test_worker_runs_queued_turns_and_drains_on_sigterm(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(
        f'[store]\nbackend = "redis"\nurl = "{redis_url}"\nkey_prefix = "{prefix}:s"\n\n'
        f'[queue]\nbackend = "redis"\nurl = "{redis_url}"\nkey_prefix = "{prefix}:q"\n'
        'lease_timeout = "5s"\npoll_interval = "100ms"\n\n'
        '[model]\nprovider = "echo"\n'
    )
    store = RedisSessionStore(redis_url, key_prefix=f"{prefix}:s")
    queue = RedisJobQueue(redis_url, key_prefix=f"{prefix}:q")
    manager = SessionManager(store)
    producer = SequentialWorkerPool(manager, queue=queue)  # enqueues only
    sessions = [(await manager.create(user_id="u1")).id for _ in range(3)]
    jobs = [
        await producer.enqueue(s, f"{s} turn {i}", options={"max_turns": 1})
        for i in range(4)
        for s in sessions
    ]
    log = tmp_path / "worker.log"
    proc = _worker(cfg, log)
    try:
        end = time.monotonic() + DEADLINE
        while not all([(await queue.get(j)).status is JobStatus.COMPLETED for j in jobs]):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < end, f"jobs not done: {log.read_text()}"
            await asyncio.sleep(0.05)
        for s in sessions:
            loaded = await manager.load(s)
            users = [
                e.message.text
                for e in loaded.entries
                if isinstance(e, MessageEntry) and e.message.role == "user"
            ]
            assert users == [f"{s} turn {i}" for i in range(4)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert "draining" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await queue.aclose()
        await store.aclose()
