"""Two OS processes sharing one Redis: a reader resumes a run another process writes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from spectra_core.testing.event_log_conformance import make_event, new_run_id
from spectra_redis import RedisEventLog

WORKER = str(Path(__file__).with_name("_worker.py"))
TIMEOUT = 120


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        WORKER,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"worker ended: {(await proc.stderr.read()).decode()}")
    return line.decode().strip()


async def _finish(proc: asyncio.subprocess.Process) -> list[str]:
    """The rest of the worker's lines; it must exit cleanly."""
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode().split()


async def test_a_reader_process_resumes_mid_run_then_reads_live(
    redis_url: str, prefix: str
) -> None:
    """The reader joins after 20 events, resuming after the 10th: it gets 11..20 (missed),
    then 21..50 as the writer logs them: each once, in order."""
    run = new_run_id()
    writer = await _spawn("evlog-write", redis_url, prefix, run, "20", "50")
    assert await _line(writer) == "ready"
    reader = await _spawn("evlog-read", redis_url, prefix, run, f"{run}:10")
    seen = [await _line(reader) for _ in range(10)]
    assert seen == [f"{run}:{seq}" for seq in range(11, 21)]
    assert writer.stdin is not None
    writer.stdin.write(b"go\n")  # the reader now waits for live events
    await writer.stdin.drain()
    assert await _finish(writer) == ["done"]
    seen += await _finish(reader)
    assert seen == [f"{run}:{seq}" for seq in range(11, 51)]


async def test_a_run_outlives_its_writer_process(redis_url: str, prefix: str) -> None:
    """The writer is SIGKILLed mid-run; another process reads what it logged, and the run
    can be carried on (and ended) from here."""
    run = new_run_id()
    writer = await _spawn("evlog-write", redis_url, prefix, run, "30", "40")
    assert await _line(writer) == "ready"
    writer.kill()
    await writer.wait()
    reader = await _spawn("evlog-read", redis_url, prefix, run, f"{run}:25")
    seen = [await _line(reader) for _ in range(5)]
    log = RedisEventLog(redis_url, key_prefix=prefix)
    await log.append(make_event(run, 31, "run_end", status="failed"))
    seen += await _finish(reader)
    assert seen == [f"{run}:{seq}" for seq in range(26, 32)]
    await log.aclose()
