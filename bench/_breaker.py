"""Per-call overhead of DefaultCircuitBreaker.call against pybreaker and aiobreaker.

Run with ``uv run python -m bench._breaker`` (needs ``uv sync --all-packages --group bench``).

Every breaker is closed with default thresholds and protects a no-op that succeeds, so
the numbers are the cost of the breaker's bookkeeping on the happy path:

* spectra:   ``await DefaultCircuitBreaker.call(noop)`` on an ``async def`` no-op, with the
  defaults (consecutive failures) and again with a failure-rate window and slow-call
  timing on (two clock reads and a window update per call), and on a ``def`` no-op;
* aiobreaker: ``await CircuitBreaker.call_async(noop)`` on the same coroutine function;
* pybreaker: ``CircuitBreaker.call(noop_sync)`` on a plain ``def`` no-op. Its
  ``call_async`` needs tornado (not a dependency), so pybreaker is timed on its sync path,
  which is cheaper than any awaited call: the comparison favours pybreaker.

Each figure is the best of several rounds (``time.perf_counter``), in nanoseconds per call;
"overhead" subtracts the cost of calling the bare no-op the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiobreaker
import pybreaker

from spectra_core import DefaultCircuitBreaker

__all__ = ["main", "measure"]

CALLS = 100_000
ROUNDS = 5


async def _noop() -> None:
    return None


def _noop_sync() -> None:
    return None


def _best_sync(fn: Callable[[], object], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e9


async def _best_async(fn: Callable[[], Awaitable[object]], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e9


async def _measure_async(calls: int, rounds: int) -> dict[str, float]:
    ours = DefaultCircuitBreaker()
    windowed = DefaultCircuitBreaker(failure_rate_threshold=50, slow_call_duration_ms=1000)
    aio = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=30))
    return {
        "bare await": await _best_async(_noop, calls, rounds),
        "spectra": await _best_async(lambda: ours.call(_noop), calls, rounds),
        "spectra (window)": await _best_async(lambda: windowed.call(_noop), calls, rounds),
        "spectra (sync no-op)": await _best_async(lambda: ours.call(_noop_sync), calls, rounds),
        "aiobreaker": await _best_async(lambda: aio.call_async(_noop), calls, rounds),
    }


def measure(calls: int = CALLS, rounds: int = ROUNDS) -> dict[str, float]:
    """Nanoseconds per call for each contender (and the bare no-op baselines)."""
    results = asyncio.run(_measure_async(calls, rounds))
    py = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    results["bare call"] = _best_sync(_noop_sync, calls, rounds)
    results["pybreaker (sync)"] = _best_sync(lambda: py.call(_noop_sync), calls, rounds)
    return results


def main() -> None:
    r = measure()
    ours = r["spectra"]
    ours_overhead = ours - r["bare await"]
    print(f"circuit breaker, closed, no-op call: best of {ROUNDS} x {CALLS:,} calls")
    print(f"  {'':34} {'ns/call':>9} {'overhead':>9} {'ratio':>7}")
    rows = [
        ("spectra  await call(async no-op)", ours, ours_overhead, None),
        (
            "spectra  + rate window, slow timing",
            r["spectra (window)"],
            r["spectra (window)"] - r["bare await"],
            None,
        ),
        (
            "spectra  await call(sync no-op)",
            r["spectra (sync no-op)"],
            r["spectra (sync no-op)"] - r["bare await"],
            None,
        ),
        (
            "aiobreaker await call_async(async)",
            r["aiobreaker"],
            r["aiobreaker"] - r["bare await"],
            r["aiobreaker"] / ours,
        ),
        (
            "pybreaker call(sync no-op)",
            r["pybreaker (sync)"],
            r["pybreaker (sync)"] - r["bare call"],
            r["pybreaker (sync)"] / ours,
        ),
    ]
    for label, total, overhead, ratio in rows:
        shown = "" if ratio is None else f"{ratio:6.2f}x"
        print(f"  {label:34} {total:9.0f} {overhead:9.0f} {shown:>7}")
    print(
        f"  baselines: bare 'await noop()' {r['bare await']:.0f} ns, "
        f"bare 'noop_sync()' {r['bare call']:.0f} ns"
    )
    print("  ratio = peer ns/call / spectra ns/call (above 1: spectra is faster)")
    print(
        "  overhead ratios: aiobreaker "
        f"{(r['aiobreaker'] - r['bare await']) / ours_overhead:.2f}x, pybreaker "
        f"{(r['pybreaker (sync)'] - r['bare call']) / ours_overhead:.2f}x"
    )


if __name__ == "__main__":
    main()
