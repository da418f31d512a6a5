"""Rough timings of the SQLite store (for docs/stores/sqlite.md and docs/design/; not a test).

Run from the repository root: ``uv run python plugins/spectra-sqlite/tools/measure.py``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from spectra_core import SessionManager
from spectra_sqlite import SQLiteSessionStore


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


async def per_message(folder: Path, synchronous: str, n: int = 10_000) -> None:
    async with SQLiteSessionStore(folder / "s.db", synchronous=synchronous) as store:
        manager = SessionManager(store)
        s = await manager.create()
        took: list[float] = []
        for i in range(n):
            manager.append_message(s, f"message {i} " + "lorem ipsum " * 10)
            start = time.perf_counter()
            await manager.save(s)
            took.append(time.perf_counter() - start)
        first, last = statistics.median(took[:20]), statistics.median(took[-20:])
        start = time.perf_counter()
        await store.load(s.id)
        load = time.perf_counter() - start
        start = time.perf_counter()
        await store.load_branch(s.id, tail=50)
        branch = time.perf_counter() - start
    print(
        f"synchronous={synchronous}: save of message 1-20 {first * 1e6:.0f} us, "
        f"{n - 19}-{n} {last * 1e6:.0f} us (ratio {last / first:.2f}); "
        f"{_bytes(folder) / n:.0f} bytes/message; load {load * 1e3:.1f} ms; "
        f"load_branch(tail=50) {branch * 1e3:.2f} ms"
    )


async def long_session(folder: Path, n: int = 100_000) -> None:
    async with SQLiteSessionStore(folder / "big.db", synchronous="off") as store:
        manager = SessionManager(store)
        s = await manager.create()
        for i in range(n):
            manager.append_message(s, f"m{i}")
        start = time.perf_counter()
        await manager.save(s)
        save = time.perf_counter() - start
        start = time.perf_counter()
        await store.load(s.id)
        load = time.perf_counter() - start
        start = time.perf_counter()
        part = await store.load_branch(s.id, tail=50)
        branch = time.perf_counter() - start
        manager.append_message(part, "one more")
        start = time.perf_counter()
        await manager.save(part)
        append = time.perf_counter() - start
    print(
        f"{n} entries: one save {save:.2f} s, full load {load * 1e3:.0f} ms, "
        f"load_branch(tail=50) {branch * 1e3:.2f} ms, append one {append * 1e3:.2f} ms"
    )


async def main() -> None:
    for synchronous in ("full", "normal"):
        with tempfile.TemporaryDirectory() as folder:
            await per_message(Path(folder), synchronous)
    with tempfile.TemporaryDirectory() as folder:
        await long_session(Path(folder))


if __name__ == "__main__":
    os.umask(0o077)
    asyncio.run(main())
