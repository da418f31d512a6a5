"""What the engine adds over the bare agent loop: runs/s and p50/p99 latency.

Both sides do the same work per run on the built-in ``echo`` provider: append the user
message, save, stream the model's answer, append it, save. The engine adds admission,
audit entries, events, the concurrency cap, the timeout watchdog and the supervisor
task. Measured with 1, 100 and 1,000 concurrent sessions on the memory store and on
SQLite (``spectra-sqlite``).

Run: ``uv run python -m bench.engine [--runs 2000] [--concurrency 1,100,1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from spectra_core import AssistantMessage, SessionManager, SessionStore
from spectra_core.agent import ModelRequest, ProviderDone
from spectra_core.agent.builtin import EchoProvider
from spectra_core.engine import RunStatus, SessionEngine
from spectra_core.logging import configure_logging
from spectra_core.models import ModelRef


def _stores() -> dict[str, Callable[[Path], SessionStore]]:
    from spectra_memory import InMemorySessionStore

    out: dict[str, Callable[[Path], SessionStore]] = {"memory": lambda _: InMemorySessionStore()}
    try:
        from spectra_sqlite import SQLiteSessionStore

        out["sqlite"] = lambda d: SQLiteSessionStore(d / "bench.db", synchronous="normal")
    except ImportError:
        print("spectra-sqlite is not installed: sqlite not measured")
    return out


async def _bare_run(manager: SessionManager, provider: EchoProvider, user: str, text: str) -> None:
    session = await manager.create(user_id=user)
    manager.append_message(session, text)
    await manager.save(session)
    request = ModelRequest(
        model=ModelRef("echo", provider="echo"), messages=manager.build_context(session).messages
    )
    message: AssistantMessage | None = None
    async for event in provider.stream(request):
        if isinstance(event, ProviderDone):
            message = event.message
    assert message is not None
    manager.append_message(session, message)
    await manager.save(session)


async def _measure(
    runs: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(runs))

    async def worker() -> None:
        for i in queue:
            start = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return runs / (time.perf_counter() - start), latencies


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def bench(runs: int, levels: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for store_name, make_store in _stores().items():
        for concurrency in levels:
            n = max(runs, concurrency)
            with tempfile.TemporaryDirectory() as tmp:
                store = make_store(Path(tmp))
                manager = SessionManager(store)
                provider = EchoProvider()
                bare_rps, bare = await _measure(
                    n,
                    concurrency,
                    lambda i, m=manager, p=provider: _bare_run(m, p, f"u{i}", "hello"),
                )
                engine = SessionEngine(
                    manager, max_concurrent_sessions=concurrency, provider=provider
                )
                engine.start()
                errors = 0

                async def engine_run(i: int, engine: SessionEngine = engine) -> None:
                    nonlocal errors
                    result = await engine.run(f"u{i}", "hello")
                    errors += result.status is not RunStatus.COMPLETED

                eng_rps, eng = await _measure(n, concurrency, engine_run)
                await engine.stop()
                await store.aclose()
            rows.append(
                {
                    "store": store_name,
                    "concurrency": concurrency,
                    "runs": n,
                    "bare_rps": bare_rps,
                    "engine_rps": eng_rps,
                    "bare_p50": _pct(bare, 50),
                    "engine_p50": _pct(eng, 50),
                    "bare_p99": _pct(bare, 99),
                    "engine_p99": _pct(eng, 99),
                    "errors": errors,
                }
            )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'store':<7}{'conc':>6}{'runs':>7}{'bare r/s':>10}{'engine r/s':>11}"
        f"{'ratio':>7}{'p50 bare':>10}{'p50 eng':>9}{'added':>9}{'p99 bare':>10}"
        f"{'p99 eng':>9}{'errors':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        added = (r["engine_p50"] - r["bare_p50"]) * 1000
        lines.append(
            f"{r['store']:<7}{r['concurrency']:>6}{r['runs']:>7}{r['bare_rps']:>10.0f}"
            f"{r['engine_rps']:>11.0f}{r['engine_rps'] / r['bare_rps']:>7.2f}"
            f"{r['bare_p50'] * 1000:>9.2f}m{r['engine_p50'] * 1000:>8.2f}m{added:>8.3f}m"
            f"{r['bare_p99'] * 1000:>9.2f}m{r['engine_p99'] * 1000:>8.2f}m{r['errors']:>8}"
        )
    lines.append(
        "(latencies in ms; ratio = engine runs/s over bare runs/s; added = engine p50 - bare p50)"
    )
    mem1 = next((r for r in rows if r["store"] == "memory" and r["concurrency"] == 1), None)
    if mem1:
        added = (mem1["engine_p50"] - mem1["bare_p50"]) * 1000
        verdict = "PASS" if added < 1 else "FAIL"
        lines.append(f"target: engine adds < 1 ms at p50 on memory: {added:.3f} ms {verdict}")
    big = [r for r in rows if r["concurrency"] >= 1000]
    if big:
        verdict = "PASS" if all(r["errors"] == 0 for r in big) else "FAIL"
        lines.append(f"target: 1,000 concurrent sessions without errors: {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,100,1000")
    args = parser.parse_args(argv)
    configure_logging("warning")
    levels = [int(x) for x in args.concurrency.split(",")]
    print(report(asyncio.run(bench(args.runs, levels))))


if __name__ == "__main__":
    main()
