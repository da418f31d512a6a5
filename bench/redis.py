"""Redis benchmark: spectra-redis side by side with `limits` and the Agents SDK, one run.

- limiter: decisions per second of 50 concurrent tasks (each on its own key, never
  limited) for spectra's RedisRateLimiter, `limits`' RedisStorage moving window (redis-py
  implementation) and a bare redis-py EVALSHA of ``return 1`` (the ceiling of one round
  trip per decision; spectra batches the decisions made in one loop step into one script
  call, so it can pass it), and both limiters from a single task (nothing to batch);
- composite: a CompositeRateLimiter of 3 Redis limiters (one script call) against
  `limits` deciding 1 key;
- store: appending N messages one save at a time and loading them back, for spectra's
  RedisSessionStore and the Agents SDK's RedisSession, at 10, 1,000 and 5,000 messages.

Run: ``uv run python -m bench.redis [--url redis://127.0.0.1:6379/0] [--quick]`` (peers
from ``uv sync --all-packages --group bench``). Keys live under a fresh prefix that is
deleted afterwards. Timings are informational; the script exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

__all__ = ["main"]

TASKS = 50


def _text(i: int) -> str:
    return (f"message {i}: " + "the session store keeps every message " * 12)[:400]


async def _rate(tasks: int, per_task: int, decide: Callable[[int], Awaitable[Any]]) -> float:
    """Decisions per second of ``tasks`` concurrent tasks making ``per_task`` each."""

    async def worker(t: int) -> None:
        for _ in range(per_task):
            await decide(t)

    start = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return tasks * per_task / (time.perf_counter() - start)


async def bench_limiters(url: str, prefix: str, per_task: int, out: list[str]) -> None:
    from spectra_core.rate_limit import CompositeRateLimiter, RateLimitRequest
    from spectra_redis import RedisRateLimiter

    ours = RedisRateLimiter(url, 10**9, 60_000, key_prefix=f"{prefix}:rl")
    rates: dict[str, float] = {}
    lone: dict[str, float] = {}
    rates["spectra RedisRateLimiter"] = await _rate(
        TASKS, per_task, lambda t: ours.check_limit(f"k{t}")
    )
    chain = CompositeRateLimiter(
        [
            {
                "limiter": RedisRateLimiter(url, 10**9, 60_000, key_prefix=f"{prefix}:a"),
                "key": "tenant",
            },
            {
                "limiter": RedisRateLimiter(url, 10**9, 60_000, key_prefix=f"{prefix}:b"),
                "key": "user",
            },
            {"limiter": ours, "key": "global"},
        ]
    )
    rates["spectra composite of 3 keys (one script call)"] = await _rate(
        TASKS,
        per_task,
        lambda t: chain.check_limit(RateLimitRequest(f"u{t}", tenant_id=f"t{t % 5}")),
    )
    client = aioredis.Redis.from_url(url)
    ceiling = client.register_script("return 1")
    rates["redis-py EVALSHA 'return 1' (ceiling)"] = await _rate(
        TASKS, per_task, lambda t: ceiling(keys=[f"{prefix}:c{t}"])
    )
    await client.aclose()
    try:
        from limits import RateLimitItemPerMinute
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter
    except ImportError as exc:
        out.append(f"- limits: not installed ({exc}); uv sync --all-packages --group bench")
    else:
        storage = RedisStorage(f"async+{url}", implementation="redispy", key_prefix=prefix)
        peer = MovingWindowRateLimiter(storage)
        item = RateLimitItemPerMinute(10**6)
        rates["limits RedisStorage moving window (1 key)"] = await _rate(
            TASKS, per_task, lambda t: peer.hit(item, f"k{t}")
        )
        # one task: every decision alone (nothing to batch), one round trip each
        lone["limits"] = await _rate(1, per_task * 5, lambda t: peer.hit(item, "lone"))
    lone["spectra"] = await _rate(1, per_task * 5, lambda t: ours.check_limit("lone"))
    await ours.aclose()
    for limiter, _ in chain.limiters:
        await limiter.aclose()  # type: ignore[attr-defined]
    out += ["", "## Limiter decisions per second (50 tasks)", "", "| limiter | decisions/s |"]
    out.append("|---|---:|")
    out += [f"| {name} | {rate:,.0f} |" for name, rate in rates.items()]
    peer_rate = rates.get("limits RedisStorage moving window (1 key)")
    mine = rates["spectra RedisRateLimiter"]
    composite = rates["spectra composite of 3 keys (one script call)"]
    ceiling_rate = rates["redis-py EVALSHA 'return 1' (ceiling)"]
    out.append("")
    out.append(f"- spectra / EVALSHA ceiling: {mine / ceiling_rate:.2f}x")
    if peer_rate:
        out.append(f"- spectra / limits: {mine / peer_rate:.2f}x (target >= 1.5x)")
        out.append(
            f"- spectra composite of 3 keys / limits on 1 key: {composite / peer_rate:.2f}x "
            "(target >= 1x)"
        )
    if "limits" in lone:
        out.append(
            f"- one task (no concurrency): spectra {lone['spectra']:,.0f}/s, limits "
            f"{lone['limits']:,.0f}/s: {lone['spectra'] / lone['limits']:.2f}x"
        )


async def _time(work: Awaitable[Any]) -> float:
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


async def bench_store(url: str, prefix: str, sizes: Sequence[int], out: list[str]) -> None:
    from spectra_core import SessionManager
    from spectra_core.models import AssistantMessage
    from spectra_redis import RedisSessionStore

    rows: list[tuple[str, int, float, float, float]] = []
    store = RedisSessionStore(url, key_prefix=f"{prefix}:s", ttl_seconds=3600)
    manager = SessionManager(store)
    for n in sizes:
        s = await manager.create()
        times = []
        for i in range(n):
            text = _text(i)
            manager.append_message(s, text if i % 2 == 0 else AssistantMessage(text))
            times.append(await _time(manager.save(s)))
        load = min([await _time(store.load(s.id)) for _ in range(3)])
        rows.append(("spectra RedisSessionStore", n, statistics.fmean(times), _last(times), load))
    await store.aclose()
    notes: list[str] = []
    try:
        from agents.extensions.memory import RedisSession
    except ImportError as exc:
        notes.append(f"- Agents SDK RedisSession: cannot run ({exc})")
    else:
        client = aioredis.Redis.from_url(url)
        for n in sizes:
            session = RedisSession(
                uuid.uuid4().hex, redis_client=client, key_prefix=f"{prefix}:agents", ttl=3600
            )
            times = []
            for i in range(n):
                item: Any = {"role": "user" if i % 2 == 0 else "assistant", "content": _text(i)}
                times.append(await _time(session.add_items([item])))
            load = min([await _time(session.get_items()) for _ in range(3)])
            rows.append(("Agents SDK RedisSession", n, statistics.fmean(times), _last(times), load))
        await client.aclose()
    out += ["", "## Store: append one message per save, then load", ""]
    out.append("| store | messages | append mean | append, last 10% | load |")
    out.append("|---|---:|---:|---:|---:|")
    out += [
        f"| {name} | {n:,} | {_ms(mean)} | {_ms(last)} | {_ms(load)} |"
        for name, n, mean, last, load in rows
    ]
    out.append("")
    for n in sizes:
        ours = next(r for r in rows if r[0].startswith("spectra") and r[1] == n)
        peer = next((r for r in rows if r[0].startswith("Agents") and r[1] == n), None)
        if peer is not None:
            out.append(
                f"- {n:,} messages: append {ours[2] / peer[2]:.2f}x, load {ours[4] / peer[4]:.2f}x "
                "of the Agents SDK's time (below 1: faster)"
            )
    first, last = rows[0], next(r for r in rows if r[0] == rows[0][0] and r[1] == sizes[-1])
    out.append(
        f"- spectra append at {sizes[-1]:,} vs at {sizes[0]:,} messages: "
        f"{last[3] / first[2]:.2f}x (flat: about 1)"
    )
    out += notes


def _last(times: list[float]) -> float:
    return statistics.fmean(times[-max(1, len(times) // 10) :])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def run(url: str, quick: bool) -> list[str]:
    prefix = f"spectra-bench-{uuid.uuid4().hex[:8]}"
    out = [f"# spectra-redis benchmark ({url.split('@')[-1]})"]
    try:
        await bench_limiters(url, prefix, 20 if quick else 400, out)
        await bench_store(url, prefix, [10, 100] if quick else [10, 1_000, 5_000], out)
    finally:
        client = aioredis.Redis.from_url(url)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()
    return out


def main(argv: Sequence[str] | None = None, out: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    lines = asyncio.run(run(args.url, args.quick))
    print("\n".join(lines), file=out or sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
