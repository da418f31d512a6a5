"""Two OS processes sharing one Redis: one session, one rate limit, one circuit breaker.

Each process is a separate engine-side worker: it writes 20 messages to the same
session (retrying on ConflictError: no entry is ever lost), asks a shared limiter of 30
requests per minute 25 times (together they get exactly 30), and calls a flaky service
through a shared breaker (the failures of both processes count towards opening it).

Run with Redis on 127.0.0.1:6379 (or SPECTRA_REDIS_URL)::

    uv run python contrib/examples/redis_two_processes.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid

from spectra_core import CircuitOpenError, ConflictError, SessionManager
from spectra_redis import RedisCircuitBreaker, RedisRateLimiter, RedisSessionStore

URL = os.environ.get("SPECTRA_REDIS_URL", "redis://127.0.0.1:6379/0")


async def worker(name: str, prefix: str, session_id: str) -> tuple[int, int]:
    limiter = RedisRateLimiter(URL, 30, 60_000, key_prefix=f"{prefix}:rl")
    breaker = RedisCircuitBreaker(URL, 4, 60_000, name="flaky-service", key_prefix=prefix)
    async with RedisSessionStore(URL, key_prefix=prefix) as store:
        manager = SessionManager(store)
        for i in range(20):
            while True:
                session = await manager.load(session_id, tail=1)
                manager.append_message(session, f"{name}: message {i}")
                try:
                    await manager.save(session)
                    break
                except ConflictError:
                    continue  # the other process saved first: reload and retry
        admitted = sum([(await limiter.check_limit("tenant-acme")).allowed for _ in range(25)])

        async def flaky() -> None:
            raise ConnectionError("service down")

        rejected = 0
        for _ in range(3):
            try:
                await breaker.call(flaky)
            except ConnectionError:
                pass
            except CircuitOpenError:
                rejected += 1
    await limiter.aclose()
    await breaker.aclose()
    return admitted, rejected


def run_worker(name: str, prefix: str, session_id: str, results: multiprocessing.Queue) -> None:
    results.put((name, *asyncio.run(worker(name, prefix, session_id))))


async def main() -> None:
    prefix = f"example-{uuid.uuid4().hex[:8]}"
    async with RedisSessionStore(URL, key_prefix=prefix) as store:
        manager = SessionManager(store)
        session = await manager.create()
        results: multiprocessing.Queue = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=run_worker, args=(n, prefix, session.id, results))
            for n in ("process-a", "process-b")
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        outcome = [results.get() for _ in procs]
        loaded = await manager.load(session.id)
        print(f"entries in the shared session: {len(loaded.entries)} (2 x 20)")
        print(f"limiter admissions: {sum(a for _, a, _ in outcome)} of 50 asked (limit 30)")
        print(f"calls the shared breaker refused: {sum(r for *_, r in outcome)} (opened after 4)")
        client = store.client()
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    asyncio.run(main())
