"""``spectra worker``: run a worker pool over the configured queue until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from ..errors import SpectraError

__all__ = ["add_worker_parser", "run_worker"]


def add_worker_parser(subparsers: Any) -> None:
    """Add ``worker`` to the ``spectra`` sub-commands."""
    from ..cli._common import add_config_option

    parser = subparsers.add_parser(
        "worker",
        help="run queued agent turns ([queue] of the config) until SIGTERM",
        description="Run a SequentialWorkerPool over the config's [queue], each job a turn "
        "of its session through the config's engine. SIGTERM or Ctrl-C stops leasing, "
        "lets running jobs finish and exits 0.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="jobs run at once (default 4)"
    )
    parser.add_argument("--worker-id", default=None, help="prefix of this pool's lease ids")
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    """Exit status: 0 after a drain, 1 if the queue or a backend fails, 2 for a bad
    config or option."""
    from ..cli._common import fail, load
    from ..config import build_engine, build_queue

    if args.concurrency < 1:
        return fail(SpectraError(f"--concurrency must be at least 1, got {args.concurrency}"), 2)
    try:
        config, registry = load(args.config)
        queue = build_queue(config, registry)
        engine = build_engine(config, registry)
    except SpectraError as exc:
        return fail(exc, 2)
    try:
        asyncio.run(_serve(engine, queue, args.concurrency, args.worker_id))
    except SpectraError as exc:
        return fail(exc, 1)
    return 0


async def _serve(engine: Any, queue: Any, concurrency: int, worker_id: str | None) -> None:
    from ._pool import SequentialWorkerPool

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await queue.ping()
        engine.start()
        pool = SequentialWorkerPool(
            engine.session_manager,
            queue=queue,
            concurrency=concurrency,
            engine=engine,
            worker_id=worker_id,
        )
        await pool.process()
        print(
            f"spectra worker {pool.worker_id}: running {concurrency} at a time; "
            "SIGTERM or Ctrl-C drains and exits",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        print("spectra worker: draining", file=sys.stderr, flush=True)
        await pool.stop(drain=True)
    finally:
        await engine.stop(drain=True)
        await queue.aclose()
