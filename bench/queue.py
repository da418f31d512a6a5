"""Job queue benchmark: spectra-redis' RedisJobQueue (with a SequentialWorkerPool) side
by side with saq on the same Redis, the same no-op job, in one run.

- enqueue: jobs per second one producer adds, one ``await`` after another;
- process: jobs per second the workers start, ``--jobs`` queued beforehand (spread over
  ``--sessions`` sessions for ours: one session's jobs run one at a time, in order);
- latency: from enqueue to the handler starting, on idle workers, one job at a time
  (p50 and p99 of ``--samples``).

Both run ``--concurrency`` workers in this process. Ours also keeps per-session order,
leases that outlive a crashed worker, and a dead-letter stream; saq gives none of the
first, and its jobs are not leased.

Run: ``uv run python -m bench.queue [--url redis://127.0.0.1:6379/0] [--quick]`` (saq
from ``uv sync --all-packages --group bench``). Keys live under fresh prefixes that are
deleted afterwards. Timings are informational; the script exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import redis.asyncio as aioredis
import structlog

__all__ = ["Figures", "main"]


@attrs.frozen
class Figures:
    enqueue: float  # jobs/s
    process: float  # jobs/s
    p50_ms: float
    p99_ms: float


class _Probe:
    """What the no-op handler records: how many jobs started, when the last one did."""

    def __init__(self) -> None:
        self.started = 0
        self.target = 0
        self.done = asyncio.Event()
        self.at = 0.0

    def hit(self) -> None:
        self.started += 1
        self.at = time.perf_counter()
        if self.started >= self.target:
            self.done.set()

    def expect(self, n: int) -> None:
        self.started, self.target = 0, n
        self.done = asyncio.Event()


async def _measure(
    enqueue: Callable[[int], Awaitable[Any]],
    start: Callable[[], Awaitable[Any]],
    probe: _Probe,
    jobs: int,
    samples: int,
) -> Figures:
    probe.expect(jobs)
    t0 = time.perf_counter()
    for i in range(jobs):
        await enqueue(i)
    enqueued = time.perf_counter() - t0
    t0 = time.perf_counter()
    await start()
    await probe.done.wait()
    processed = probe.at - t0
    waits = []
    for i in range(samples):
        probe.expect(1)
        t0 = time.perf_counter()
        await enqueue(jobs + i)
        await probe.done.wait()
        waits.append((probe.at - t0) * 1000)
    q = statistics.quantiles(waits, n=100) if len(waits) > 1 else waits * 99
    return Figures(jobs / enqueued, jobs / processed, statistics.median(waits), q[98])


async def ours(url: str, prefix: str, jobs: int, sessions: int, conc: int, samples: int) -> Figures:
    from spectra_core import SessionManager
    from spectra_core.workers import Job, SequentialWorkerPool
    from spectra_memory import InMemorySessionStore
    from spectra_redis import RedisJobQueue

    queue = RedisJobQueue(url, key_prefix=prefix)
    pool = SequentialWorkerPool(
        SessionManager(InMemorySessionStore()), queue=queue, concurrency=conc
    )
    probe = _Probe()

    async def noop(job: Job) -> None:
        probe.hit()

    async def enqueue(i: int) -> None:
        await queue.enqueue(f"s{i % sessions}", {"input": "x"})

    try:
        return await _measure(enqueue, lambda: pool.process(noop), probe, jobs, samples)
    finally:
        await pool.stop(drain=True)
        await queue.aclose()


async def saq_peer(url: str, name: str, jobs: int, conc: int, samples: int) -> Figures:
    from saq import Queue, Worker

    queue = Queue.from_url(url, name=name)
    probe = _Probe()

    async def noop(ctx: Any, **_: Any) -> None:
        probe.hit()

    worker = Worker(queue, functions=[("noop", noop)], concurrency=conc)
    task: asyncio.Task[Any] | None = None

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(worker.start())

    async def enqueue(i: int) -> None:
        await queue.enqueue("noop", i=i)

    await queue.connect()
    try:
        return await _measure(enqueue, start, probe, jobs, samples)
    finally:
        await worker.stop()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await queue.disconnect()


async def _cleanup(url: str, patterns: Sequence[str]) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for pattern in patterns:
            keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
            for i in range(0, len(keys), 500):
                await client.delete(*keys[i : i + 500])
    finally:
        await client.aclose()


async def run(url: str, quick: bool, concurrency: int) -> list[str]:
    jobs, sessions, samples = (50, 10, 10) if quick else (2000, 100, 300)
    tag = uuid.uuid4().hex[:8]
    prefix, name = f"bench-queue-{tag}", f"bench-saq-{tag}"
    lines = [
        f"job queues on {url}: {jobs} no-op jobs, {concurrency} workers, {samples} latency samples",
        "",
        "| queue | enqueue jobs/s | process jobs/s | start latency p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    try:
        mine = await ours(url, prefix, jobs, sessions, concurrency, samples)
        rows = [("spectra redis", mine)]
        try:
            import saq  # noqa: F401
        except ImportError:
            peer = None
            lines.append("(saq is not installed: uv sync --all-packages --group bench)")
        else:
            peer = await saq_peer(url, name, jobs, concurrency, samples)
            rows.append(("saq", peer))
    finally:
        await _cleanup(url, [f"{prefix}*", f"saq:{name}*", f"*{name}*"])
    for label, f in rows:
        lines.insert(
            -1 if peer is None else len(lines),
            f"| {label} | {f.enqueue:,.0f} | {f.process:,.0f} | {f.p50_ms:.2f} | {f.p99_ms:.2f} |",
        )
    if peer is not None:
        lines += [
            "",
            f"ratios ours/saq: enqueue {mine.enqueue / peer.enqueue:.2f}x, "
            f"process {mine.process / peer.process:.2f}x, "
            f"latency p50 {mine.p50_ms / peer.p50_ms:.2f}x, p99 {mine.p99_ms / peer.p99_ms:.2f}x "
            "(latency: lower is better)",
        ]
    return lines


def main(argv: Sequence[str] | None = None, out: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)
    lines = asyncio.run(run(args.url, args.quick, args.concurrency))
    print("\n".join(lines), file=out or sys.stdout)
    return 0


if __name__ == "__main__":
    # a log line per job would be measured too
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("saq").setLevel(logging.WARNING)
    raise SystemExit(main())
