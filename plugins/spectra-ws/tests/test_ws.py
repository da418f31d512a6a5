"""The WebSocket transport on a real uvicorn server with the websockets client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from spectra_core import BackendKind, EventType, RunEvent, RunStatus
from spectra_core.plugins import load_plugins, module_source
from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import MemoryEventLog
from spectra_ws import CloseCode, RunControl, WsOptions, WsTransport
from spectra_ws import _plugin as ws_plugin

WAIT = 10.0  # a safety net against hangs, never a measurement


def run_event(run_id: str, seq: int, end: bool = False, **extra: Any) -> dict[str, Any]:
    kind = EventType.RUN_END if end else EventType.MESSAGE_UPDATE
    fields: dict[str, Any] = {"status": RunStatus.COMPLETED} if end else {"delta": {"t": seq}}
    event = RunEvent(type=kind, session_id="s-1", run_id=run_id, seq=seq, timestamp=1.0, **fields)
    return {**event.to_dict(), **extra}


async def until(cond: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), WAIT)


class LogWritingControl:
    """An engine stand-in: a started run writes three synthetic events to the log;
    a run on session "hold" waits for abort_session."""

    def __init__(self, log: MemoryEventLog) -> None:
        self.log = log
        self.started: list[Mapping[str, Any]] = []
        self.held: dict[str, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start_run(self, request: Mapping[str, Any]) -> str:
        run_id = f"run-{len(self.started) + 1}"
        self.started.append(request)
        await self.log.open(run_id)
        self.tasks.append(asyncio.ensure_future(self._run(run_id, request.get("session_id"))))
        return run_id

    async def _run(self, run_id: str, session_id: Any) -> None:
        await self.log.append(run_event(run_id, 1))
        if session_id == "hold":
            gate = self.held[session_id] = asyncio.Event()
            await gate.wait()
        await self.log.append(run_event(run_id, 2))
        await self.log.append(run_event(run_id, 3, end=True))

    def abort_session(self, session_id: str) -> bool:
        gate = self.held.pop(session_id, None)
        if gate is None:
            return False
        gate.set()
        return True


@pytest.fixture
def log() -> MemoryEventLog:
    return MemoryEventLog(max_events=2000)


@pytest.fixture
def control(log: MemoryEventLog) -> LogWritingControl:
    return LogWritingControl(log)


@pytest.fixture
def transport(log: MemoryEventLog, control: LogWritingControl) -> WsTransport:
    return WsTransport(log, control, send_timeout_ms=10_000)


def app_for(transport: WsTransport) -> Starlette:
    return Starlette(routes=[WebSocketRoute("/ws", transport.handle)])


@pytest.fixture
async def url(transport: WsTransport) -> AsyncIterator[str]:
    async with serve_asgi(app_for(transport)) as base:
        yield base.replace("http://", "ws://") + "/ws"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def events_until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    out = []
    while (m := await recv(ws))["type"] != "end":
        assert m["type"] == "event", m
        out.append(m)
    return out


async def test_subscribe_streams_the_envelope_until_run_end(url: str, log: MemoryEventLog) -> None:
    await log.append(run_event("r1", 1))
    async with websockets.connect(url) as ws:
        await send(ws, op="subscribe", run_id="r1")
        assert await recv(ws) == {"type": "subscribed", "run_id": "r1", "after": None}
        first = await recv(ws)
        assert first == {
            "type": "event",
            "id": "r1:1",
            "event": "message_update",
            "data": run_event("r1", 1),
        }
        await log.append(run_event("r1", 2))
        await log.append(run_event("r1", 3, end=True))
        rest = await events_until_end(ws)
        assert [m["id"] for m in rest] == ["r1:2", "r1:3"]
        assert rest[-1]["event"] == "run_end"


async def test_resume_after_an_id_then_live(url: str, log: MemoryEventLog) -> None:
    for seq in range(1, 6):
        await log.append(run_event("r2", seq))
    async with websockets.connect(url) as ws:
        await send(ws, op="subscribe", run_id="r2", after="r2:3")
        assert (await recv(ws))["type"] == "subscribed"
        assert [(await recv(ws))["id"] for _ in range(2)] == ["r2:4", "r2:5"]
        await log.append(run_event("r2", 6, end=True))
        assert [m["id"] for m in await events_until_end(ws)] == ["r2:6"]


async def test_a_disconnect_does_not_touch_the_run(
    url: str, log: MemoryEventLog, transport: WsTransport
) -> None:
    await log.append(run_event("r3", 1))
    async with websockets.connect(url) as ws:
        await send(ws, op="subscribe", run_id="r3")
        await recv(ws)
        last = (await recv(ws))["id"]
    await until(lambda: transport.connections == 0)
    for seq in range(2, 5):
        await log.append(run_event("r3", seq, end=seq == 4))
    async with websockets.connect(url) as ws:
        await send(ws, op="subscribe", run_id="r3", after=last)
        await recv(ws)
        assert [m["id"] for m in await events_until_end(ws)] == ["r3:2", "r3:3", "r3:4"]


async def test_ping_pong_both_levels(url: str) -> None:
    async with websockets.connect(url) as ws:
        await send(ws, op="ping", data=42)
        assert await recv(ws) == {"type": "pong", "data": 42}
        pong = await ws.ping()
        await asyncio.wait_for(pong, WAIT)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ({"op": "subscribe", "run_id": "nope"}, "RunLogNotFound"),
        ({"op": "subscribe", "run_id": "r4", "after": "r4:99"}, "InvalidArgumentError"),
        ({"op": "subscribe", "run_id": "../x"}, "InvalidIdError"),
        ({"op": "subscribe"}, "InvalidArgumentError"),
        ({"op": "fly", "ref": 7}, "InvalidArgumentError"),
        ({"op": "abort"}, "InvalidArgumentError"),
    ],
)
async def test_bad_requests_get_an_error_and_the_socket_stays_open(
    url: str, log: MemoryEventLog, message: dict[str, Any], kind: str
) -> None:
    await log.append(run_event("r4", 1))
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps(message))
        error = await recv(ws)
        assert (error["type"], error["kind"], error["op"]) == ("error", kind, message.get("op"))
        assert error["error"]
        assert error["ref"] == message.get("ref")
        await send(ws, op="ping")
        assert (await recv(ws))["type"] == "pong"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", CloseCode.INVALID_PAYLOAD),
        ("[1, 2]", CloseCode.INVALID_PAYLOAD),
        (b"\x00", CloseCode.UNSUPPORTED_DATA),
    ],
)
async def test_protocol_violations_close_with_their_code(
    url: str, frame: str | bytes, code: int
) -> None:
    async with websockets.connect(url) as ws:
        await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert info.value.rcvd is not None and info.value.rcvd.code == code


async def test_start_and_abort_runs_over_the_socket(url: str, control: LogWritingControl) -> None:
    async with websockets.connect(url) as ws:
        await send(ws, op="start", user_id="u1", input="hi", session_id="s-9")
        assert await recv(ws) == {"type": "subscribed", "run_id": "run-1", "after": None}
        assert await recv(ws) == {"type": "started", "run_id": "run-1"}
        assert [m["id"] for m in await events_until_end(ws)] == ["run-1:1", "run-1:2", "run-1:3"]
        assert control.started[0]["input"] == "hi"

        await send(ws, op="start", user_id="u1", input="wait", session_id="hold")
        assert (await recv(ws))["type"] == "subscribed"
        assert (await recv(ws))["type"] == "started"
        assert (await recv(ws))["id"] == "run-2:1"
        await until(lambda: "hold" in control.held)
        await send(ws, op="abort", session_id="hold")
        replies = [await recv(ws) for _ in range(3)]
        assert {"type": "aborted", "session_id": "hold", "aborted": True} in replies
        await send(ws, op="abort", session_id="hold")
        tail = [await recv(ws) for _ in range(2)]
        assert {"type": "aborted", "session_id": "hold", "aborted": False} in [*replies, *tail]


async def test_start_without_a_control_is_an_error(log: MemoryEventLog) -> None:
    transport = WsTransport(log)
    async with (
        serve_asgi(app_for(transport)) as base,
        websockets.connect(base.replace("http", "ws") + "/ws") as ws,
    ):
        await send(ws, op="start", user_id="u", input="x")
        error = await recv(ws)
    assert error["kind"] == "InvalidArgumentError" and "only streams" in error["error"]


async def test_unsubscribe_stops_the_stream(url: str, log: MemoryEventLog) -> None:
    await log.append(run_event("r5", 1))
    async with websockets.connect(url) as ws:
        await send(ws, op="subscribe", run_id="r5")
        await recv(ws)
        await recv(ws)
        await send(ws, op="unsubscribe", run_id="r5")
        assert await recv(ws) == {"type": "unsubscribed", "run_id": "r5"}
        await log.append(run_event("r5", 2))
        await send(ws, op="ping")
        assert (await recv(ws))["type"] == "pong"  # nothing of r5 came in between


async def stalled_subscriber(port: int, run_id: str) -> socket.socket:
    """A client that subscribes, then never reads: the websockets sans-I/O protocol over
    a raw socket with a tiny receive buffer (the asyncio client keeps reading)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"))
    proto.send_request(proto.connect())
    await loop.sock_sendall(sock, b"".join(proto.data_to_send()))
    while not proto.events_received():
        proto.receive_data(await loop.sock_recv(sock, 1))  # the 101 only, byte by byte
    assert proto.handshake_exc is None
    proto.send_text(json.dumps({"op": "subscribe", "run_id": run_id}).encode())
    await loop.sock_sendall(sock, b"".join(proto.data_to_send()))
    return sock


async def test_a_slow_reader_is_closed_4008_without_slowing_others(log: MemoryEventLog) -> None:
    transport = WsTransport(log, send_buffer=4, send_timeout_ms=200)
    await log.open("big")
    async with serve_asgi(app_for(transport)) as base:
        url = base.replace("http", "ws") + "/ws"
        slow = await stalled_subscriber(int(base.rsplit(":", 1)[1]), "big")
        async with websockets.connect(url, max_size=None) as fast:
            await send(fast, op="subscribe", run_id="big")
            await recv(fast)

            async def read_all() -> list[str]:
                return [m["id"] for m in await events_until_end(fast)]

            reader = asyncio.ensure_future(read_all())
            padding = "x" * 20_000
            for seq in range(1, 1001):  # ~20 MB: far more than the stalled socket's buffers
                await log.append(run_event("big", seq, end=seq == 1000, padding=padding))
                await asyncio.sleep(0)
            ids = await asyncio.wait_for(reader, WAIT * 3)
            assert ids == [f"big:{n}" for n in range(1, 1001)]
            await until(lambda: transport.close_codes[CloseCode.SLOW_CONSUMER] == 1)
        slow.close()


def test_registered_as_transport_ws() -> None:
    registry = load_plugins([module_source(ws_plugin, "spectra-ws")])
    transport = registry.create(
        BackendKind.TRANSPORT, "ws", WsOptions(send_buffer=9, send_timeout=0.5)
    )
    assert isinstance(transport, WsTransport)
    assert (transport.send_buffer, transport.send_timeout_ms, transport.log) == (9, 500, None)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="send_buffer"):
        WsTransport(send_buffer=0)


def test_control_protocol() -> None:
    assert isinstance(LogWritingControl(MemoryEventLog()), RunControl)
