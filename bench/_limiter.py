"""Decisions per second: spectra's LocalRateLimiter vs limits' moving window (async API,
in-memory storage), side by side in one process on the same machine.

Run: ``uv run python -m bench._limiter`` (``--quick`` for a short run).

Each scenario runs the same sequence of keys through both limiters, on the real clock:

- ``admit``: 1,000 keys, 100 requests per minute each; most decisions admit.
- ``saturated``: 10 hot keys, 50 requests per minute each; almost every decision rejects.
- ``mixed``: 2,000 keys drawn with a skew (a few hot keys, a long tail), 20 per minute.

``limits`` answers only admitted-or-not (``hit``); ours also returns ``remaining``,
``reset_at`` and ``retry_after``. A second peer line, ``limits hit+stats``, adds the
``get_window_stats`` call that ``limits`` needs to give the same information.
Best of ``--repeat`` rounds (default 3), each on fresh limiters.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import attrs
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from spectra_core.rate_limit import LocalRateLimiter

__all__ = ["Measurement", "main", "measure"]

Decide = Callable[[str], Awaitable[object]]


@attrs.frozen
class Scenario:
    name: str
    limit: int
    keys: list[str]


@attrs.frozen
class Measurement:
    scenario: str
    decisions: int
    ours: float  # decisions per second
    peer: float  # limits hit()
    peer_with_stats: float  # limits hit() + get_window_stats()
    ours_admitted: int
    peer_admitted: int

    @property
    def ratio(self) -> float:
        return self.ours / self.peer

    @property
    def ratio_with_stats(self) -> float:
        return self.ours / self.peer_with_stats


def scenarios(decisions: int, seed: int = 7) -> list[Scenario]:
    rng = random.Random(seed)
    admit = [f"user-{i % 1000}" for i in range(decisions)]
    hot = [f"user-{i % 10}" for i in range(decisions)]
    skewed = [f"user-{min(int(rng.paretovariate(1.2)), 2000)}" for _ in range(decisions)]
    return [
        Scenario("admit", 100, admit),
        Scenario("saturated", 50, hot),
        Scenario("mixed", 20, skewed),
    ]


async def _run(decide: Decide, keys: Sequence[str]) -> tuple[float, int]:
    admitted = 0
    start = time.perf_counter()
    for key in keys:
        result = await decide(key)
        if result is True or getattr(result, "allowed", False):
            admitted += 1
    return time.perf_counter() - start, admitted


def _ours(limit: int) -> Decide:
    limiter = LocalRateLimiter(limit, 60_000)
    return limiter.check_limit


def _peer(limit: int) -> Decide:
    strategy = MovingWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(limit)

    async def decide(key: str) -> bool:
        return await strategy.hit(item, key)

    return decide


def _peer_with_stats(limit: int) -> Decide:
    strategy = MovingWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(limit)

    async def decide(key: str) -> tuple[bool, object]:
        allowed = await strategy.hit(item, key)
        return allowed, await strategy.get_window_stats(item, key)

    return decide


async def _measure_one(scenario: Scenario, repeat: int) -> Measurement:
    """Rounds alternate between the limiters so background load hits each alike."""
    makers = (_ours, _peer, _peer_with_stats)
    best = [float("inf")] * len(makers)
    admitted = [0] * len(makers)
    for _ in range(repeat):
        for i, make in enumerate(makers):
            elapsed, admitted[i] = await _run(make(scenario.limit), scenario.keys)
            best[i] = min(best[i], elapsed)
    n = len(scenario.keys)
    return Measurement(
        scenario.name, n, n / best[0], n / best[1], n / best[2], admitted[0], admitted[1]
    )


async def measure(decisions: int = 200_000, repeat: int = 3) -> list[Measurement]:
    """Run every scenario through both limiters; decisions per second, best of ``repeat``."""
    return [await _measure_one(s, repeat) for s in scenarios(decisions)]


def report(results: Sequence[Measurement]) -> str:
    lines = [
        "rate limiter decisions/s: spectra LocalRateLimiter vs limits MovingWindowRateLimiter "
        "(limits.aio, MemoryStorage)",
        f"{'scenario':<10} {'decisions':>9} {'ours':>11} {'limits hit':>11} {'ratio':>6} "
        f"{'hit+stats':>11} {'ratio':>6}  admitted ours/limits",
    ]
    for m in results:
        lines.append(
            f"{m.scenario:<10} {m.decisions:>9} {m.ours:>11,.0f} {m.peer:>11,.0f} "
            f"{m.ratio:>5.2f}x {m.peer_with_stats:>11,.0f} {m.ratio_with_stats:>5.2f}x  "
            f"{m.ours_admitted}/{m.peer_admitted}"
        )
    geo = statistics.geometric_mean([m.ratio for m in results])
    lines.append(f"geometric mean ratio (ours / limits hit): {geo:.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._limiter", description=__doc__)
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 decisions, one round")
    args = parser.parse_args(argv)
    decisions, repeat = (20_000, 1) if args.quick else (args.decisions, args.repeat)
    print(report(asyncio.run(measure(decisions, repeat))))


if __name__ == "__main__":
    main()
