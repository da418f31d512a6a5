"""A worker process for the multi-process tests (run as a script).

``limit URL PREFIX N``: N concurrent requests on one key against 60 per minute; prints
how many were admitted.
``race URL PREFIX SESSION TAG N [COLD_DB]``: N saves of one message each on one session,
retrying on ConflictError; prints the number of conflicts.
``breaker URL NAME N``: N concurrent calls through a half-open breaker; prints how many
ran.
``evlog-write URL PREFIX RUN K N``: appends events 1..K of RUN, prints ``ready``, waits
for a line on stdin, appends K+1..N (N is ``run_end``), prints ``done``.
``evlog-read URL PREFIX RUN AFTER``: subscribes to RUN after the id AFTER (``-``: from
the start) and prints each event's id as it comes, until the run ends.
"""

from __future__ import annotations

import asyncio
import sys

from spectra_core import ConflictError, SessionManager
from spectra_core.testing.event_log_conformance import make_event
from spectra_redis import RedisEventLog, RedisRateLimiter, RedisSessionStore


async def limit(url: str, prefix: str, n: int) -> None:
    limiter = RedisRateLimiter(url, 60, 60_000, key_prefix=prefix)
    results = await asyncio.gather(*(limiter.check_limit("shared") for _ in range(n)))
    await limiter.aclose()
    print(sum(r.allowed for r in results), flush=True)


async def race(url: str, prefix: str, session_id: str, tag: str, n: int, cold: str) -> None:
    cold_store = None
    if cold:
        from spectra_sqlite import SQLiteSessionStore

        cold_store = SQLiteSessionStore(cold, busy_timeout=30)
    async with RedisSessionStore(url, key_prefix=prefix, cold_store=cold_store) as store:
        manager = SessionManager(store)
        conflicts = 0
        for i in range(n):
            while True:
                s = await manager.load(session_id, tail=1)
                manager.append_message(s, f"{tag}-{i}")
                try:
                    await manager.save(s)
                    break
                except ConflictError:
                    conflicts += 1
        print(conflicts, flush=True)


async def evlog_write(url: str, prefix: str, run: str, k: int, n: int) -> None:
    log = RedisEventLog(url, key_prefix=prefix)
    for seq in range(1, k + 1):
        await log.append(make_event(run, seq))
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for seq in range(k + 1, n + 1):
        await log.append(make_event(run, seq, "run_end" if seq == n else "x"))
    print("done", flush=True)
    await log.aclose()


async def evlog_read(url: str, prefix: str, run: str, after: str) -> None:
    log = RedisEventLog(url, key_prefix=prefix)
    async for entry in await log.subscribe(run, None if after == "-" else after):
        print(entry.id, flush=True)
    await log.aclose()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "limit":
        asyncio.run(limit(args[0], args[1], int(args[2])))
    elif mode == "race":
        cold = args[5] if len(args) > 5 else ""
        asyncio.run(race(args[0], args[1], args[2], args[3], int(args[4]), cold))
    elif mode == "evlog-write":
        asyncio.run(evlog_write(args[0], args[1], args[2], int(args[3]), int(args[4])))
    elif mode == "evlog-read":
        asyncio.run(evlog_read(args[0], args[1], args[2], args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
