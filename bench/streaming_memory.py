"""Peak memory of one streamed run: is a run's memory linear in its output?

Runs ``SessionEngine.run_streaming`` with the offline ``echo`` provider on an input of
``--chars`` characters (so the model streams that many characters back, ``--chunk-size``
per ``message_update``) in a fresh subprocess, consumes every event, and reports the
child's peak resident set size (``ru_maxrss``) next to the peak of the same child that
only imports everything (the baseline). Each size runs in its own process, so one
measurement cannot inherit another's heap::

    uv run python -m bench.streaming_memory                      # 200,000 characters
    uv run python -m bench.streaming_memory --chars 50000,100000,200000

Peak RSS is what the kernel reports, so it varies by a few MB from run to run; the point
is the shape (linear: doubling the output doubles the increment; quadratic: it quadruples).
To measure another commit (e.g. ``main`` before a change), run this script in a checkout
of that commit (``git worktree add``, ``uv sync --all-packages``, copy the script).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
from typing import TextIO

__all__ = ["main", "measure"]

_CHILD = "--child"


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _stream(chars: int, chunk_size: int) -> dict[str, float | int]:
    from spectra_core import SessionManager
    from spectra_core.agent.builtin import EchoProvider
    from spectra_core.engine import SessionEngine
    from spectra_memory import InMemorySessionStore

    engine = SessionEngine(
        SessionManager(InMemorySessionStore()),
        provider=EchoProvider(prefix="", chunk_size=chunk_size),
        max_input_chars=max(chars, 1),
    )
    engine.start()
    events = 0
    streamed = 0
    async for event in await engine.run_streaming("bench-user", "x" * chars):
        events += 1
        if event.delta and event.delta.get("type") == "text":
            streamed += len(event.delta["text"])
    await engine.stop()
    return {"events": events, "streamed_chars": streamed}


def _child(chars: int, chunk_size: int) -> None:
    import spectra_core.engine  # noqa: F401  (the baseline includes the imports)
    import spectra_memory  # noqa: F401

    result: dict[str, float | int] = {"chars": chars}
    if chars:
        result.update(asyncio.run(_stream(chars, chunk_size)))
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(result))


def measure(chars: int, chunk_size: int = 8) -> dict[str, float]:
    """Run one measurement in a fresh interpreter and return what it printed."""
    cmd = [sys.executable, "-m", "bench.streaming_memory", _CHILD, str(chars), str(chunk_size)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    data: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return data


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == _CHILD:
        _child(int(args[1]), int(args[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.streaming_memory")
    parser.add_argument("--chars", default="200000", help="comma-separated output sizes")
    parser.add_argument("--chunk-size", type=int, default=8, help="characters per delta")
    opts = parser.parse_args(args)
    sizes = [int(s) for s in opts.chars.split(",")]
    base = measure(0, opts.chunk_size)["peak_rss_mb"]
    print(f"baseline (imports only): peak RSS {base:.1f} MB", file=out)
    print("| streamed chars | events | peak RSS MB | over baseline MB |", file=out)
    print("|---:|---:|---:|---:|", file=out)
    for chars in sizes:
        row = measure(chars, opts.chunk_size)
        peak = row["peak_rss_mb"]
        print(
            f"| {int(row['streamed_chars']):,} | {int(row['events']):,} | {peak:.1f} "
            f"| {peak - base:.1f} |",
            file=out,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
