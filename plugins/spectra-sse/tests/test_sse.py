"""SSE over a real uvicorn server with real clients (httpx + httpx-sse, raw sockets)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import ServerSentEvent, aconnect_sse
from sse_helpers import append_run, make_app, run_event
from starlette.requests import Request

from spectra_core import BackendKind, EventType
from spectra_core.plugins import load_plugins, module_source
from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import MemoryEventLog
from spectra_sse import ReconnectInfo, SseBridge, SseOptions, create_sse_response
from spectra_sse import _plugin as sse_plugin

WAIT = 10.0  # a safety net against hangs, never a measurement


async def until(cond: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), WAIT)


async def read_events(
    client: httpx.AsyncClient, url: str, n: int | None = None, **headers: str
) -> list[ServerSentEvent]:
    """Up to ``n`` events (all until the stream ends when None)."""
    out: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        source.response.raise_for_status()
        async for sse in source.aiter_sse():
            if sse.event == "message" and not sse.data:
                continue  # the retry: frame
            out.append(sse)
            if n is not None and len(out) == n:
                break
    return out


def seqs(events: list[ServerSentEvent]) -> list[int]:
    return [json.loads(e.data)["seq"] for e in events]


async def test_a_run_streams_with_ids_types_and_json(base_url: str, log: MemoryEventLog) -> None:
    await append_run(log, "run-1", range(1, 4), end_at=3)
    async with (
        httpx.AsyncClient(base_url=base_url) as client,
        aconnect_sse(client, "GET", "/runs/run-1/events") as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-store"
        frames = [sse async for sse in source.aiter_sse()]
    assert frames[0].retry == 5000
    events = frames[1:]
    assert [e.id for e in events] == ["run-1:1", "run-1:2", "run-1:3"]
    assert [e.event for e in events] == ["message_update", "message_update", "run_end"]
    assert json.loads(events[0].data) == run_event("run-1", 1)
    assert json.loads(events[2].data)["status"] == "completed"


async def test_live_events_reach_every_client_once_in_order(
    base_url: str, log: MemoryEventLog, bridge: SseBridge
) -> None:
    await log.open("run-2")
    async with httpx.AsyncClient(base_url=base_url) as client:
        readers = [
            asyncio.ensure_future(read_events(client, "/runs/run-2/events")) for _ in range(3)
        ]
        await until(lambda: bridge.client_count == 3)
        for seq in range(1, 51):
            await log.append(
                run_event(
                    "run-2", seq, EventType.RUN_END if seq == 50 else EventType.MESSAGE_UPDATE
                )
            )
            await asyncio.sleep(0)
        for reader in readers:
            assert seqs(await asyncio.wait_for(reader, WAIT)) == list(range(1, 51))
    await until(lambda: bridge.client_count == 0)


async def test_last_event_id_resumes_with_exactly_the_missed_events(
    base_url: str, log: MemoryEventLog
) -> None:
    await append_run(log, "run-3", range(1, 11), end_at=10)
    async with httpx.AsyncClient(base_url=base_url) as client:
        got = await read_events(client, "/runs/run-3/events", **{"Last-Event-ID": "run-3:6"})
        assert seqs(got) == [7, 8, 9, 10]
        got = await read_events(client, "/runs/run-3/events?last_event_id=run-3:8")
        assert seqs(got) == [9, 10]


async def test_a_client_that_disconnects_does_not_stop_the_run_and_resumes(
    base_url: str, log: MemoryEventLog, bridge: SseBridge
) -> None:
    await append_run(log, "run-4", range(1, 4))
    async with httpx.AsyncClient(base_url=base_url) as client:
        first = await read_events(client, "/runs/run-4/events", n=2)
        assert seqs(first) == [1, 2]
        await until(lambda: bridge.client_count == 0)  # the server saw the disconnect
        await append_run(log, "run-4", range(4, 9), end_at=8)  # the run goes on
        rest = await read_events(client, "/runs/run-4/events", **{"Last-Event-ID": first[-1].id})
    assert seqs(rest) == [3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    ("path", "headers", "status", "kind"),
    [
        ("/runs/nope/events", {}, 404, "RunLogNotFound"),
        ("/runs/run-5/events", {"Last-Event-ID": "garbage"}, 400, "InvalidArgumentError"),
        ("/runs/run-5/events", {"Last-Event-ID": "other:1"}, 400, "InvalidArgumentError"),
        ("/runs/run-5/events", {"Last-Event-ID": "run-5:99"}, 400, "InvalidArgumentError"),
        ("/runs/-bad/events", {}, 400, "InvalidIdError"),
    ],
)
async def test_bad_requests_get_a_clear_error_before_streaming(
    base_url: str, log: MemoryEventLog, path: str, headers: dict[str, str], status: int, kind: str
) -> None:
    await append_run(log, "run-5", range(1, 3))
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == status
    assert response.json()["kind"] == kind


async def test_a_resume_older_than_the_log_is_a_conflict(base_url: str, bridge: SseBridge) -> None:
    small = MemoryEventLog(max_events=3)
    bridge.log = small
    await append_run(small, "run-6", range(1, 10))
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/runs/run-6/events", headers={"Last-Event-ID": "run-6:2"})
    assert response.status_code == 409
    assert "no longer in the log" in response.json()["error"]


async def test_nothing_left_after_the_end_is_204_so_eventsource_stops(
    base_url: str, log: MemoryEventLog
) -> None:
    await append_run(log, "run-7", range(1, 3), end_at=2)
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/runs/run-7/events", headers={"Last-Event-ID": "run-7:2"})
    assert response.status_code == 204


async def test_heartbeat_comments_keep_an_idle_stream_alive(log: MemoryEventLog) -> None:
    bridge = SseBridge(heartbeat_interval_ms=20, log=log)
    await log.open("idle")
    seen = []
    async with (
        serve_asgi(make_app(bridge)) as url,
        httpx.AsyncClient(base_url=url) as client,
        client.stream("GET", "/runs/idle/events") as response,
    ):
        async for line in response.aiter_lines():
            seen.append(line)
            if line == ": heartbeat":
                break
    assert seen[0] == "retry: 5000"
    assert ": heartbeat" in seen


@pytest.mark.parametrize("with_writer", [False, True], ids=["direct", "writer"])
async def test_a_slow_client_is_cut_off_without_slowing_the_writer_or_others(
    log: MemoryEventLog, with_writer: bool
) -> None:
    bridge = SseBridge(send_timeout_ms=200, client_buffer=8, log=log)
    if with_writer:  # read through its buffer task rather than in its response
        bridge.add_client("slow")
    disconnected: list[str] = []
    await log.open("big")
    async with serve_asgi(make_app(bridge)) as url, httpx.AsyncClient(base_url=url) as client:
        port = int(url.rsplit(":", 1)[1])
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.setblocking(False)
        await asyncio.get_running_loop().sock_connect(slow, ("127.0.0.1", port))
        request = b"GET /runs/big/events HTTP/1.1\r\nHost: x\r\nX-Client-Id: slow\r\n\r\n"
        await asyncio.get_running_loop().sock_sendall(slow, request)
        await until(lambda: "slow" in bridge.clients and bridge.clients["slow"].connected)
        slow_client = bridge.clients["slow"]
        fast = asyncio.ensure_future(read_events(client, "/runs/big/events"))
        await until(lambda: bridge.client_count == 2)
        payload = "x" * 20_000
        for seq in range(1, 1001):  # ~20 MB: far more than the slow socket's buffers
            kind = EventType.RUN_END if seq == 1000 else EventType.MESSAGE_UPDATE
            event = run_event("big", seq, kind)
            await log.append({**event, "padding": payload})
            await asyncio.sleep(0)
            if slow_client.end_reason is not None and not disconnected:
                disconnected.append(slow_client.end_reason)
        got = await asyncio.wait_for(fast, WAIT * 3)
        assert seqs(got) == list(range(1, 1001))
        await until(lambda: slow_client.end_reason is not None)
        assert slow_client.end_reason == "slow: send timed out"
        assert "slow" not in bridge.clients
        slow.close()


async def test_bridge_broadcasts_and_writes_to_one_client(base_url: str, bridge: SseBridge) -> None:
    writer = bridge.add_client("alice")
    assert writer.write("data: hello alice\n\n")
    async with httpx.AsyncClient(base_url=base_url) as client:
        alice = asyncio.ensure_future(read_events(client, "/broadcast?client_id=alice", n=3))
        bob = asyncio.ensure_future(
            read_events(client, "/broadcast", n=2, **{"X-Client-Id": "bob"})
        )
        await until(lambda: bridge.client_count == 2)
        first = await bridge.send({"type": "agent_event", "data": {"n": 1}, "timestamp": 1})
        assert first.id == f"{bridge.stream_id}:1"
        await bridge.send({"type": "agent_event", "data": {"n": 2}, "timestamp": 2})
        got_alice, got_bob = await asyncio.wait_for(asyncio.gather(alice, bob), WAIT)
    assert got_alice[0].data == "hello alice"
    assert [json.loads(e.data)["data"]["n"] for e in got_alice[1:]] == [1, 2]
    assert [e.event for e in got_bob] == ["agent_event", "agent_event"]
    assert [e.id for e in got_bob] == [f"{bridge.stream_id}:1", f"{bridge.stream_id}:2"]


async def test_writer_end_closes_only_that_client(base_url: str, bridge: SseBridge) -> None:
    writer = bridge.add_client("carol")
    writer.write("data: bye\n\n")
    writer.end()
    async with httpx.AsyncClient(base_url=base_url) as client:
        got = await read_events(client, "/broadcast?client_id=carol")
    assert [e.data for e in got] == ["bye"]
    assert not writer.write("data: too late\n\n")


async def test_a_broadcast_client_resumes_from_the_bridge_log(
    base_url: str, bridge: SseBridge
) -> None:
    for n in range(5):
        await bridge.send({"type": "tick", "n": n})
    async with httpx.AsyncClient(base_url=base_url) as client:
        got = await read_events(
            client, "/broadcast", n=2, **{"Last-Event-ID": f"{bridge.stream_id}:3"}
        )
    assert [json.loads(e.data)["n"] for e in got] == [3, 4]


async def test_works_as_is_in_fastapi(log: MemoryEventLog, bridge: SseBridge) -> None:
    app = FastAPI()

    @app.get("/runs/{run_id}/events")
    async def events(run_id: str, request: Request) -> Any:
        return create_sse_response(bridge.run_stream(run_id), request)

    await append_run(log, "run-f", range(1, 4), end_at=3)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert seqs(await read_events(client, "/runs/run-f/events")) == [1, 2, 3]
        assert (await client.get("/runs/unknown/events")).status_code == 404


def test_reconnect_info_and_validation() -> None:
    bridge = SseBridge(heartbeat_interval_ms=1000, reconnect_timeout_ms=2500, max_attempts=7)
    assert bridge.get_reconnect_info() == ReconnectInfo(timeout=2500, max_attempts=7)
    with pytest.raises(ValueError, match="heartbeat_interval_ms"):
        SseBridge(heartbeat_interval_ms=0)
    with pytest.raises(ValueError, match="client id"):
        bridge.add_client("../x")


async def test_send_refuses_events_without_a_type() -> None:
    bridge = SseBridge()
    with pytest.raises(ValueError, match="'type'"):
        await bridge.send({"data": 1})
    assert (await bridge.send({"type": "ok"})).seq == 1  # the refusal used no seq


def test_registered_as_transport_sse() -> None:
    registry = load_plugins([module_source(sse_plugin, "spectra-sse")])
    options = SseOptions(heartbeat_interval=2.0, reconnect_timeout=0.5, max_attempts=3)
    bridge = registry.create(BackendKind.TRANSPORT, "sse", options)
    assert isinstance(bridge, SseBridge)
    assert (bridge.heartbeat_interval_ms, bridge.reconnect_timeout_ms) == (2000, 500)
    assert bridge.get_reconnect_info().max_attempts == 3


async def test_a_writer_obtained_while_connected_writes_before_the_next_event(
    base_url: str, log: MemoryEventLog, bridge: SseBridge
) -> None:
    await log.open("run-w")
    async with httpx.AsyncClient(base_url=base_url) as client:
        reader = asyncio.ensure_future(
            read_events(client, "/runs/run-w/events?client_id=dave", n=3)
        )
        await until(lambda: bridge.client_count == 1)
        writer = bridge.add_client("dave")
        assert writer.write("event: note\ndata: from the app\n\n")
        await log.append(run_event("run-w", 1))
        await log.append(run_event("run-w", 2))
        got = await asyncio.wait_for(reader, WAIT)
    assert [(e.event, e.data) for e in got[:1]] == [("note", "from the app")]
    assert [e.id for e in got[1:]] == ["run-w:1", "run-w:2"]
    await until(lambda: bridge.client_count == 0)
    assert not writer.write("data: gone\n\n")  # its connection is over
