"""SSE fan-out: spectra-sse (log-backed, resumable) vs plain sse-starlette, side by side.

Run: ``uv run python -m bench.sse`` (``--clients 1,100,1000 --events 200``; ``--quick``).

One uvicorn server on 127.0.0.1 and raw-socket clients in one process and event loop.
For each client count, a writer publishes the same run events (``RunEvent.to_dict()``)
as fast as it can, yielding to the loop after each; every client reads until ``run_end``.

- spectra: ``create_sse_response(bridge.run_stream(run_id))`` over a ``MemoryEventLog``:
  every event is logged first, clients read the log by id (resume on).
- plain: ``EventSourceResponse`` per client over its own ``asyncio.Queue``, the writer
  putting each event in every queue; no log, no resume.

events/s = clients x events / time from the first publish to the last client's
``run_end``; the ratio is also given per CPU second of the process (server and clients
share it), which a busy machine disturbs less than wall time. Memory per idle client:
tracemalloc growth while N clients are connected and waiting (server and client sides,
the same client for both). Informational: exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TextIO

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spectra_core import EventType, RunEvent, RunStatus
from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import MemoryEventLog
from spectra_sse import SseBridge, create_sse_response

END_MARK = b"event: run_end"


def make_events(run_id: str, n: int) -> list[dict[str, Any]]:
    out = []
    for seq in range(1, n + 1):
        last = seq == n
        fields: dict[str, Any] = (
            {"status": RunStatus.COMPLETED}
            if last
            else {"turn": 1, "delta": {"type": "text", "text": f"token {seq} of a longer answer "}}
        )
        kind = EventType.RUN_END if last else EventType.MESSAGE_UPDATE
        event = RunEvent(
            type=kind, session_id="s-bench", run_id=run_id, seq=seq, timestamp=1.0, **fields
        )
        out.append(event.to_dict())
    return out


class Plain:
    """The baseline: per-client queues fed by the writer, no log."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()

    async def stream(self, queue: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[ServerSentEvent]:
        import msgspec

        encode = msgspec.json.encode
        try:
            while True:
                event = await queue.get()
                yield ServerSentEvent(
                    encode(event).decode(),
                    event=event["type"],
                    id=f"{event['run_id']}:{event['seq']}",
                    sep="\n",
                )
                if event["type"] == "run_end":
                    return
        finally:
            self.queues.discard(queue)

    async def endpoint(self, request: Request) -> Response:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues.add(queue)
        return EventSourceResponse(self.stream(queue), ping=15, sep="\n")

    async def publish(self, event: dict[str, Any]) -> None:
        for queue in self.queues:
            queue.put_nowait(event)


class Spectra:
    def __init__(self) -> None:
        self.log = MemoryEventLog(max_events=100_000)
        self.bridge = SseBridge(log=self.log, client_buffer=256)

    async def endpoint(self, request: Request) -> Response:
        return create_sse_response(self.bridge.run_stream(request.path_params["run"]), request)

    async def publish(self, event: dict[str, Any]) -> None:
        await self.log.append(event)


async def client(port: int, path: str, connected: Callable[[], None]) -> int:
    """Read one stream until run_end; the bytes read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    connected()
    total = 0
    tail = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        total += len(chunk)
        if END_MARK in tail + chunk:
            break
        tail = chunk[-32:]
    writer.close()
    return total


async def measure(
    kind: str,
    clients: int,
    events: int,
    port: int,
    server: Plain | Spectra,
    idle_mem: bool,
    tag: str = "",
) -> tuple[float, float, float | None]:
    """(events/s, events per CPU second, bytes per idle client or None)."""
    run_id = f"run-{kind}-{clients}-{tag}"
    evs = make_events(run_id, events)
    if isinstance(server, Spectra):
        await server.log.open(run_id)
    path = f"/{kind}/{run_id}"
    ready = 0

    def connected() -> None:
        nonlocal ready
        ready += 1

    gc.collect()
    if idle_mem:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(client(port, path, connected)) for _ in range(clients)]
    while (  # noqa: ASYNC110 (no event tells when uvicorn has accepted every stream)
        ready < clients
        or (isinstance(server, Plain) and len(server.queues) < clients)
        or (isinstance(server, Spectra) and server.bridge.client_count < clients)
    ):
        await asyncio.sleep(0.005)
    for _ in range(20):  # let every stream reach its wait
        await asyncio.sleep(0)
    per_client = None
    if idle_mem:
        gc.collect()
        per_client = (tracemalloc.get_traced_memory()[0] - before) / clients
        tracemalloc.stop()
    start, cpu_start = time.perf_counter(), time.process_time()
    for event in evs:
        await server.publish(event)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return clients * events / elapsed, clients * events / max(cpu, 1e-9), per_client


def events_for(clients: int, events: int, budget: int) -> int:
    """Events per run: ``events``, fewer when clients x events would pass ``budget``."""
    return max(10, min(events, budget // clients))


async def run(client_counts: list[int], events: int, rounds: int, budget: int, out: TextIO) -> None:
    plain, spectra = Plain(), Spectra()
    app = Starlette(
        routes=[Route("/plain/{run}", plain.endpoint), Route("/spectra/{run}", spectra.endpoint)]
    )
    async with serve_asgi(app, backlog=4096) as url:
        port = int(url.rsplit(":", 1)[1])
        print(
            f"median of {rounds} rounds (plain and spectra alternate), at most {budget:,} "
            "deliveries per measurement; clients on one loop with the server\n",
            file=out,
        )
        print(
            "| clients | events | plain events/s | spectra events/s | spectra / plain "
            "| spectra / plain per CPU s |",
            file=out,
        )
        print("|---:|---:|---:|---:|---:|---:|", file=out)
        mem: dict[str, float] = {}
        for n in client_counts:
            per_run = events_for(n, events, budget)
            rates: dict[str, list[float]] = {"plain": [], "spectra": []}
            cpu_rates: dict[str, list[float]] = {"plain": [], "spectra": []}
            for r in range(rounds):
                for kind, server in (("plain", plain), ("spectra", spectra)):
                    idle = r == 0 and n == max(client_counts)
                    rate, cpu_rate, per_client = await measure(
                        kind, n, per_run, port, server, idle, tag=str(r)
                    )
                    rates[kind].append(rate)
                    cpu_rates[kind].append(cpu_rate)
                    if per_client is not None:
                        mem[kind] = per_client
            p, s = statistics.median(rates["plain"]), statistics.median(rates["spectra"])
            cpu = statistics.median(cpu_rates["spectra"]) / statistics.median(cpu_rates["plain"])
            print(
                f"| {n:,} | {per_run} | {p:,.0f} | {s:,.0f} | {s / p:.2f}x | {cpu:.2f}x |",
                file=out,
            )
        n = max(client_counts)
        print(
            f"\nmemory per idle client ({n:,} connected, tracemalloc, server + client):", file=out
        )
        for kind in ("plain", "spectra"):
            print(f"- {kind}: {mem[kind] / 1024:.1f} KiB", file=out)
        print("\ntarget: spectra / plain >= 0.8x with resume on", file=out)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--events", type=int, default=200, help="events per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40_000, help="max deliveries per run")
    parser.add_argument("--quick", action="store_true", help="1 and 10 clients, 20 events")
    args = parser.parse_args(argv)
    counts = [1, 10] if args.quick else [int(c) for c in args.clients.split(",")]
    events = 20 if args.quick else args.events
    rounds = 1 if args.quick else args.rounds
    asyncio.run(run(counts, events, rounds, args.budget, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
