"""Append and load times of several stores measured in turns, in one process.

``bench.stores`` measures one store after the other; on a machine whose speed drifts
(a shared VM: 2x within minutes) the store that runs during a slow minute loses. Here
every store gets a fresh conversation of N messages per round, and message i is appended
to each store before message i + 1 is appended to any, so all of them see the same disk
conditions; then each store is reopened and loaded in turns, ``--loads`` times. Per
round and store: the mean and median append and the median load; at the end, each
store's mean append and median load over the rounds, and their ratios to the first
store's.

The order of the stores is shuffled anew for every message and every load (seeded: the
same in every run), so that each store follows each other store as often. A fixed order
is not fair: with the order reversed on every other message the end stores ran twice in
a row and the middle one of three came out 4-9% slower than the same store at an end;
with the order rotated each store always follows the same one, and the one after
LangGraph paid for the dirty pages LangGraph's large writes left to flush.

Run: ``uv run python -m bench.interleave [--stores fs,sqlite,agents] [--size 1000]
[--rounds 5] [--loads 9] [--workdir DIR]`` (peers need ``uv sync --all-packages --group
bench``). Informational, like the other benchmarks: it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import TypeVar

from bench.stores import ALL_STORES, LABELS, Backend, Conversation, make_backend, missing_reason

__all__ = ["main"]

_T = TypeVar("_T")


def _shuffled(items: list[_T], rng: random.Random) -> list[_T]:
    """A copy of ``items`` in an order drawn from ``rng``."""
    out = list(items)
    rng.shuffle(out)
    return out


async def _round(
    kinds: list[str], conv: Conversation, workdir: str | None, loads: int = 0
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    times: dict[str, list[float]] = {k: [] for k in kinds}
    load_times: dict[str, list[float]] = {k: [] for k in kinds}
    rng = random.Random(conv.size)  # the same orders in every round and run
    with tempfile.TemporaryDirectory(dir=workdir, prefix="spectra-bench-interleave-") as d:
        backends: list[tuple[str, Backend]] = []
        for k in kinds:
            directory = Path(d) / k
            directory.mkdir()
            backend = make_backend(k, conv, directory)
            await backend.open()
            await backend.begin()
            backends.append((k, backend))
        try:
            gc.collect()
            gc.disable()
            for i in range(conv.size):
                for k, backend in _shuffled(backends, rng):
                    start = time.perf_counter()
                    await backend.append(i)
                    times[k].append(time.perf_counter() - start)
            gc.enable()
            for _ in range(loads):
                for k, backend in _shuffled(backends, rng):
                    await backend.reopen()  # a cold store object, as in bench.stores
                    backend.loaded = None
                    start = time.perf_counter()
                    count = await backend.load()
                    load_times[k].append(time.perf_counter() - start)
                    if count != conv.size:
                        raise RuntimeError(f"{k} loaded {count} of {conv.size} messages")
        finally:
            gc.enable()
            for _, backend in backends:
                await backend.close()
    return times, load_times


async def run(
    kinds: list[str], size: int, rounds: int, workdir: str | None, loads: int = 9
) -> None:
    warm = Conversation.of(50)
    await _round(kinds, warm, workdir, 1)  # imports, schema creation, caches
    conv = Conversation.of(size)
    means: dict[str, list[float]] = {k: [] for k in kinds}
    load_medians: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        times, load_times = await _round(kinds, conv, workdir, loads)
        parts = []
        for k in kinds:
            means[k].append(statistics.fmean(times[k]))
            text = (
                f"{LABELS[k]} {statistics.fmean(times[k]) * 1e6:.0f} / "
                f"{statistics.median(times[k]) * 1e6:.0f} µs"
            )
            if load_times[k]:
                load_medians[k].append(statistics.median(load_times[k]))
                text += f", load {statistics.median(load_times[k]) * 1e3:.2f} ms"
            parts.append(text)
        print(f"round {r + 1} (mean / median append): " + " | ".join(parts), flush=True)
    print(f"\nmean append over {rounds} rounds of {size} messages:")
    _summary(kinds, {k: statistics.fmean(v) for k, v in means.items()}, means, 1e6, "µs")
    if loads:
        print(f"\nload (median of {loads} per round, then the median over {rounds} rounds):")
        loads_of = {k: statistics.median(v) for k, v in load_medians.items()}
        _summary(kinds, loads_of, load_medians, 1e3, "ms")


def _summary(
    kinds: list[str],
    totals: dict[str, float],
    per_round: dict[str, list[float]],
    scale: float,
    unit: str,
) -> None:
    """One line per store: its value, its ratio to the first store's, rounds it won."""
    first = kinds[0]
    digits = 0 if unit == "µs" else 2
    for k in kinds:
        wins = sum(m < o for m, o in zip(per_round[k], per_round[first], strict=True))
        print(
            f"- {LABELS[k]}: {totals[k] * scale:.{digits}f} {unit} "
            f"({totals[k] / totals[first]:.2f}x of {LABELS[first]}; "
            f"lower in {wins} of {len(per_round[k])} rounds)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="fs,sqlite,agents")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loads", type=int, default=9, help="loads per store and round")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ALL_STORES]
    if unknown:
        parser.error(f"unknown stores {unknown}; choose from {', '.join(ALL_STORES)}")
    ready = []
    for k in kinds:
        reason = missing_reason(k)
        if reason:
            print(reason)
        else:
            ready.append(k)
    if ready:
        asyncio.run(run(ready, args.size, args.rounds, args.workdir, args.loads))


if __name__ == "__main__":
    main()
