"""What the HTTP API adds to a run: spectra-server vs in-process ``engine.run``.

Run: ``uv run python -m bench.server`` (``--runs 300 --clients 100 --rounds 3``; ``--quick``).

One engine (memory store and event log, the offline ``echo`` provider) serves both
paths; one uvicorn server on 127.0.0.1 and httpx clients run in the same process and
event loop, so the client's own cost is counted in the HTTP figures (an upper bound of
the server's overhead).

- latency: one run at a time, alternating in-process ``engine.run`` and
  ``POST /v1/runs`` (waiting for the result, an API key checked) run by run; p50 and
  p99 of each, and the overhead per run (HTTP minus in-process).
- throughput: ``--clients`` concurrent clients each doing runs until ``--runs`` are
  done; runs/s over HTTP and in-process (the same number of concurrent tasks calling
  ``engine.run``), the medians of ``--rounds`` alternating rounds.

- streams: ``--streams`` SSE clients (raw sockets) join ``--stream-runs`` runs held at
  a gate (``GET /v1/runs/{id}/events``, ownership read from the log), then the runs are
  released; errors = clients that got no 200 or no ``run_end``, and the time from the
  release to the last ``run_end``.

Informational: exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

import httpx

from spectra_core import EchoProvider, SessionEngine, SessionManager
from spectra_core.logging import configure_logging
from spectra_core.testing.asgi_server import serve_asgi
from spectra_core.testing.providers import GatedProvider
from spectra_memory import InMemorySessionStore, MemoryEventLog
from spectra_server import ApiKey, ServerSettings, create_app

KEY = "bench-key-0123456789abcdef"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _latency(
    engine: SessionEngine, client: httpx.AsyncClient, runs: int
) -> tuple[list[float], list[float]]:
    local: list[float] = []
    http: list[float] = []
    for i in range(runs):
        start = time.perf_counter()
        await engine.run("bench", f"hello {i}", options={"tenant_id": "bench"})
        local.append(time.perf_counter() - start)
        start = time.perf_counter()
        response = await client.post("/v1/runs", json={"input": f"hello {i}"})
        http.append(time.perf_counter() - start)
        response.raise_for_status()
    return local, http


async def _throughput(clients: int, runs: int, one: Callable[[int], Awaitable[None]]) -> float:
    counter = iter(range(runs))

    async def worker() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return runs / (time.perf_counter() - start)


async def _bench(args: argparse.Namespace, out: TextIO) -> None:
    engine = SessionEngine(
        SessionManager(InMemorySessionStore()),
        provider=EchoProvider(),
        event_log=MemoryEventLog(),
        max_concurrent_sessions=max(100, args.clients * 2),
    )
    engine.start()
    settings = ServerSettings(api_keys=[ApiKey(tenant="bench", user="bench", key=KEY)])
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    try:
        async with (
            serve_asgi(create_app(engine, settings)) as url,
            httpx.AsyncClient(
                base_url=url, headers={"X-API-Key": KEY}, limits=limits, timeout=120
            ) as client,
        ):
            await _latency(engine, client, 20)  # warm-up
            local, http = await _latency(engine, client, args.runs)
            out.write("| path | p50 ms | p99 ms |\n|---|---|---|\n")
            for name, values in (("in-process engine.run", local), ("POST /v1/runs", http)):
                p50, p99 = _percentile(values, 0.5) * 1000, _percentile(values, 0.99) * 1000
                out.write(f"| {name} | {p50:.2f} | {p99:.2f} |\n")
            over = [h - lo for h, lo in zip(http, local, strict=True)]
            out.write(
                f"| overhead per run | {_percentile(over, 0.5) * 1000:.2f} | "
                f"{_percentile(over, 0.99) * 1000:.2f} |\n\n"
            )

            async def by_http(i: int) -> None:
                (await client.post("/v1/runs", json={"input": f"x {i}"})).raise_for_status()

            async def in_process(i: int) -> None:
                await engine.run("bench", f"x {i}", options={"tenant_id": "bench"})

            rates: dict[str, list[float]] = {"http": [], "local": []}
            for _ in range(args.rounds):
                rates["local"].append(await _throughput(args.clients, args.runs, in_process))
                rates["http"].append(await _throughput(args.clients, args.runs, by_http))
            local_rate = statistics.median(rates["local"])
            http_rate = statistics.median(rates["http"])
            out.write("| clients | in-process runs/s | HTTP runs/s | HTTP / in-process |\n")
            out.write("|---|---|---|---|\n")
            out.write(
                f"| {args.clients} | {local_rate:.0f} | {http_rate:.0f} | "
                f"{http_rate / local_rate:.2f} |\n"
            )
    finally:
        await engine.stop(drain=False)


async def _sse_client(port: int, path: str, connected: Callable[[bool], None]) -> bool:
    """Read one stream until run_end; whether it answered 200 and ended with run_end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
            f"X-API-Key: {KEY}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200")
        connected(ok)
        if not ok:
            return False
        tail = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return False
            if b"event: run_end" in tail + chunk:
                return True
            tail = chunk[-32:]
    finally:
        writer.close()


async def _streams(args: argparse.Namespace, out: TextIO) -> None:
    provider = GatedProvider(before="a streamed answer", after=" and its end")
    engine = SessionEngine(
        SessionManager(InMemorySessionStore()),
        provider=provider,
        event_log=MemoryEventLog(),
        max_concurrent_sessions=max(100, args.stream_runs),
    )
    engine.start()
    settings = ServerSettings(api_keys=[ApiKey(tenant="bench", user="bench", key=KEY)])
    try:
        async with serve_asgi(create_app(engine, settings), backlog=4096) as url:
            port = int(url.rsplit(":", 1)[1])
            handles = [
                await engine.start_run("bench", f"run {i}", options={"tenant_id": "bench"})
                for i in range(args.stream_runs)
            ]
            await provider.started.wait()
            ready = asyncio.Event()
            joined = [0]

            def connected(ok: bool) -> None:
                joined[0] += 1
                if joined[0] == args.streams:
                    ready.set()

            clients = [
                asyncio.ensure_future(
                    _sse_client(
                        port, f"/v1/runs/{handles[i % len(handles)].run_id}/events", connected
                    )
                )
                for i in range(args.streams)
            ]
            await ready.wait()
            start = time.perf_counter()
            provider.release()
            results = await asyncio.gather(*clients, return_exceptions=True)
            elapsed = time.perf_counter() - start
            errors = sum(1 for r in results if r is not True)
            out.write("\n| SSE streams | runs | errors | release to last run_end s |\n")
            out.write("|---|---|---|---|\n")
            out.write(f"| {args.streams} | {args.stream_runs} | {errors} | {elapsed:.2f} |\n")
    finally:
        provider.release()
        await engine.stop(drain=False)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="bench.server", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--stream-runs", type=int, default=10)
    parser.add_argument(
        "--quick", action="store_true", help="30 runs, 10 clients, 1 round, 50 streams"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.clients, args.rounds, args.streams, args.stream_runs = 30, 10, 1, 50, 5
    configure_logging("warning")  # a log line per run would be measured too
    asyncio.run(_bench(args, out))
    asyncio.run(_streams(args, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
