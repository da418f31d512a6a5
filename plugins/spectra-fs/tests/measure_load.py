"""Measure bounded vs full loading of a 100,001-entry session (not a test).

Run: uv run python plugins/spectra-fs/tests/measure_load.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from spectra_core import AssistantMessage, SessionManager
from spectra_fs import FileSystemSessionStore


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        async with FileSystemSessionStore(Path(d)) as store:
            m = SessionManager(store)
            s = await m.create()
            for i in range(50_000):
                m.append_message(s, f"question {i}")
                m.append_message(s, AssistantMessage(f"answer {i}"))
            await m.save(s)
            size = store.path_of(s.id).stat().st_size
            t = time.perf_counter()
            m.append_message(s, "x")
            await m.save(s)
            save_ms = (time.perf_counter() - t) * 1e3
            r, t = _rchar(), time.perf_counter()
            await store.load_branch(s.id, tail=50)
            branch_ms, branch_bytes = (time.perf_counter() - t) * 1e3, _rchar() - r
            r, t = _rchar(), time.perf_counter()
            full = await store.load(s.id)
            full_ms, full_bytes = (time.perf_counter() - t) * 1e3, _rchar() - r
            print(
                f"entries={len(full.entries)} file={size} B; save of one entry {save_ms:.2f} ms; "
                f"load_branch(tail=50) {branch_ms:.1f} ms reading {branch_bytes} B; "
                f"full load {full_ms:.0f} ms reading {full_bytes} B"
            )


if __name__ == "__main__":
    asyncio.run(main())
