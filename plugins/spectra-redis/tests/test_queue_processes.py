"""Two worker OS processes on one Redis queue; one is killed with SIGKILL mid-job.

Every job's effect is recorded exactly once, none is lost, each session's jobs take
effect in enqueue order, and a job that always fails ends in the dead letters with its
error after ``max_attempts``. The lease is short (1s) so that the killed worker's jobs
are taken over quickly; the test polls the observable state against a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from spectra_core.workers import JobRetry, JobStatus
from spectra_redis import RedisJobQueue

WORKER = str(Path(__file__).with_name("_queue_worker.py"))
LEASE = 1.0
DEADLINE = 120.0
SESSIONS, PER_SESSION = 6, 8


def _spawn(url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, WORKER, url, prefix, str(LEASE)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after DEADLINE seconds."""
    end = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    await c.aclose()


async def test_a_killed_worker_loses_nothing_and_repeats_nothing(
    redis_url: str, prefix: str, client: aioredis.Redis, tmp_path: Path
) -> None:
    queue = RedisJobQueue(
        redis_url,
        key_prefix=prefix,
        lease_timeout=LEASE,
        retry=JobRetry(max_attempts=3, wait_initial=0.05, wait_max=0.2),
    )
    expected: dict[str, list[str]] = {}
    ids: dict[str, str] = {}
    for i in range(PER_SESSION):
        for s in range(SESSIONS):
            session, text = f"s{s}", f"s{s}-{i}"
            payload: dict[str, object] = {"input": text}
            if (s, i) == (0, 2):
                payload["hang"] = True
            if (s, i) == (1, 3):
                payload["poison"] = True
            else:
                expected.setdefault(session, []).append(text)
            ids[text] = (await queue.enqueue(session, payload)).id
    procs = [_spawn(redis_url, prefix, tmp_path / f"worker{n}.log") for n in range(2)]
    try:
        hang = ids["s0-2"]

        async def hang_started() -> bool:
            return any(
                e.startswith(hang) for e in await client.lrange(f"{prefix}:t:started", 0, -1)
            )

        await _until("the hanging job to start", hang_started)
        started = await client.lrange(f"{prefix}:t:started", 0, -1)
        pid = int(next(e for e in started if e.startswith(hang)).split(":")[1])
        victim = next(p for p in procs if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL

        async def all_finished() -> bool:
            jobs = [await queue.get(i) for i in ids.values()]
            return all(j.status.finished for j in jobs)

        await _until("every job to finish", all_finished)

        for session, texts in expected.items():
            order = await client.lrange(f"{prefix}:t:order:{session}", 0, -1)
            assert order == texts, f"{session}: effects {order}, enqueued {texts}"
        for text, job_id in ids.items():
            job = await queue.get(job_id)
            if text == "s1-3":
                assert (job.status, job.attempts) == (JobStatus.DEAD, 3)
                assert "poison job s1-3" in (job.error or ""), job.error
            else:
                assert job.status is JobStatus.COMPLETED, (text, job)
                assert job.result == text
        hung = await queue.get(hang)
        assert hung.attempts == 2 and "lease expired" in (hung.error or "")
        assert [j.id for j in await queue.dead_letters()] == [ids["s1-3"]]
        assert (await queue.get(ids["s1-4"])).status is JobStatus.COMPLETED

        survivor = next(p for p in procs if p.pid != pid)
        survivor.send_signal(signal.SIGTERM)
        status = survivor.wait(timeout=30)
        assert status == 0, (tmp_path / f"worker{procs.index(survivor)}.log").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        await queue.aclose()
