"""The redis run event log side by side with bare redis-py and the memory log, one run.

- append: events/s of one writer appending one event at a time, for ``RedisEventLog``
  (one Lua script call: seq and end checks, ``XADD MAXLEN ~``), a bare ``XADD`` (the
  round-trip ceiling) and ``MemoryEventLog``;
- fan-out: events/s delivered to N readers (1, 100) on another process's log (a second
  ``RedisEventLog``: its one ``XREAD`` loop) vs N readers each with its own connection
  blocked in ``XREAD`` (the naive design), while one writer appends; the connections each
  design holds are counted with ``CLIENT LIST`` (blocked: ``INFO clients``; the shared
  pool keeps the connections a burst of concurrent subscribes opened, up to 64, idle).

Run: ``uv run python -m bench.redis_event_log [--url redis://127.0.0.1:6379/0]
[--events 2000] [--readers 1,100]``. Keys live under a fresh prefix, deleted afterwards.
Informational; exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from spectra_core.testing.event_log_conformance import make_event
from spectra_memory import MemoryEventLog
from spectra_redis import RedisEventLog

__all__ = ["main"]


def _events(run: str, n: int) -> list[dict[str, Any]]:
    delta = {"type": "text", "text": "token of a longer answer "}
    return [make_event(run, s, "run_end" if s == n else "message_update", delta=delta)
            for s in range(1, n + 1)]  # fmt: skip


async def _timed(work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def _append(url: str, prefix: str, n: int) -> None:
    raw = aioredis.Redis.from_url(url)
    redis_log = RedisEventLog(url, key_prefix=prefix, max_events=n)
    memory_log = MemoryEventLog(max_events=n)

    async def bare() -> None:
        for e in _events(f"{prefix}-bare", n):
            await raw.xadd(f"{prefix}:bare", {"t": e["type"], "j": str(e)}, id=f"{e['seq']}-0")

    async def logged(log: Any, run: str) -> None:
        for e in _events(run, n):
            await log.append(e)

    rows = [
        ("bare XADD", await _timed(bare)),
        ("RedisEventLog.append", await _timed(lambda: logged(redis_log, "bench-r"))),
        ("MemoryEventLog.append", await _timed(lambda: logged(memory_log, "bench-m"))),
    ]
    print(f"append, {n} events, one at a time")
    for name, seconds in rows:
        print(f"  {name:24} {n / seconds:>10,.0f} events/s  ({rows[0][1] / seconds:.2f}x bare)")
    await redis_log.aclose()
    await raw.aclose()


async def _connections(url: str) -> tuple[int, int]:
    """(connections but this one, blocked clients) on the server."""
    probe = aioredis.Redis.from_url(url)
    count = len(await probe.client_list()) - 1
    blocked = int((await probe.info("clients"))["blocked_clients"])
    await probe.aclose()
    return count, blocked


async def _fan_out(url: str, prefix: str, n: int, readers: int, shared: bool) -> None:
    run = f"fan-{uuid.uuid4().hex[:8]}"
    writer = RedisEventLog(url, key_prefix=prefix, max_events=n)
    await writer.open(run)
    before = await _connections(url)
    clients: list[aioredis.Redis] = []
    if shared:
        replica = RedisEventLog(url, key_prefix=prefix, max_events=n, socket_timeout=4.0)

        async def read() -> int:
            return len([e async for e in await replica.subscribe(run)])
    else:
        key = writer.keys(run)[0]

        async def read() -> int:
            client = aioredis.Redis.from_url(url)
            clients.append(client)
            got, last = 0, "0-0"
            while True:
                for _, items in await client.xread({key: last}, block=1000, count=500):
                    for stream_id, fields in items:
                        got, last = got + 1, stream_id
                        if fields[b"t"] == b"run_end":
                            return got

    tasks = [asyncio.ensure_future(read()) for _ in range(readers)]
    for _ in range(50):
        await asyncio.sleep(0.01)  # let the readers connect and block
    now = await _connections(url)
    held, blocked = now[0] - before[0], now[1] - before[1]
    start = time.perf_counter()
    for e in _events(run, n):
        await writer.append(e)
    counts = await asyncio.gather(*tasks)
    seconds = time.perf_counter() - start
    assert counts == [n] * readers, counts
    name = "one XREAD loop" if shared else "XREAD per reader"
    print(f"  {readers:>4} readers, {name:17} {readers * n / seconds:>10,.0f} events/s "
          f"delivered; {held:>3} connections open, {blocked:>3} blocked")  # fmt: skip
    if shared:
        await replica.aclose()
    for client in clients:
        await client.aclose()
    await writer.aclose()


async def _main(url: str, n: int, reader_counts: Sequence[int]) -> None:
    prefix = f"bench-evlog-{uuid.uuid4().hex[:8]}"
    try:
        await _append(url, prefix, n)
        print(f"fan-out, {n} events, readers on another log instance")
        for readers in reader_counts:
            for shared in (True, False):
                await _fan_out(url, prefix, n, readers, shared)
    finally:
        client = aioredis.Redis.from_url(url)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--readers", default="1,100")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.readers.split(",")]
    asyncio.run(_main(args.url, args.events, counts))


if __name__ == "__main__":
    main()
