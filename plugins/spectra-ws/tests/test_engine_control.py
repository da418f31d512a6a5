"""Runs started and aborted over a real socket, by a real engine writing to its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import ClientConnection

from spectra_core import SessionManager
from spectra_core.engine import SessionEngine
from spectra_core.testing import GatedProvider
from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import InMemorySessionStore, MemoryEventLog
from spectra_ws import EngineControl, RunControl, WsTransport

WAIT = 10.0  # a safety net against hangs, never a measurement


@pytest.fixture
async def engine() -> AsyncIterator[SessionEngine]:
    engine = SessionEngine(
        SessionManager(InMemorySessionStore()), provider=GatedProvider(), event_log=MemoryEventLog()
    )
    engine.start()
    yield engine
    engine.default_provider.release()  # type: ignore[attr-defined]
    await engine.stop(drain=False)


@contextlib.asynccontextmanager
async def connected(transport: WsTransport) -> AsyncIterator[ClientConnection]:
    """A websockets client on ``transport`` served by a real uvicorn on 127.0.0.1."""
    app = Starlette(routes=[WebSocketRoute("/ws", transport.handle)])
    async with contextlib.AsyncExitStack() as stack:
        base = await stack.enter_async_context(serve_asgi(app))
        yield await stack.enter_async_context(
            websockets.connect(base.replace("http", "ws", 1) + "/ws")
        )


async def recv(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def until_type(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen = [await recv(ws)]
    while seen[-1]["type"] != kind:
        seen.append(await recv(ws))
    return seen


def test_it_is_a_run_control(engine: SessionEngine) -> None:
    assert isinstance(EngineControl(engine), RunControl)


async def test_a_socket_starts_a_run_and_streams_it_to_its_end(engine: SessionEngine) -> None:
    transport = WsTransport(engine.event_log, EngineControl(engine, user_id="alice"))
    async with connected(transport) as ws:
        await ws.send(json.dumps({"op": "start", "input": "hello"}))
        engine.default_provider.release()  # type: ignore[attr-defined]
        seen = await until_type(ws, "end")
    events = [m for m in seen if m["type"] == "event"]
    assert events[0]["event"] == "agent_start" and events[-1]["event"] == "run_end"
    assert events[-1]["data"]["status"] == "completed"
    assert [int(m["id"].rsplit(":", 1)[1]) for m in events] == list(range(1, len(events) + 1))
    session = await engine.session_manager.load(events[0]["data"]["session_id"])
    assert session.user_id == "alice"


async def test_a_socket_runs_as_its_principal_and_aborts_only_its_own_runs(
    engine: SessionEngine,
) -> None:
    mallory = WsTransport(engine.event_log, EngineControl(engine, user_id="mallory"))
    alice = await engine.start_run("alice", "hi")
    async with connected(mallory) as ws:
        await ws.send(json.dumps({"op": "start", "input": "x", "user_id": "alice"}))
        refused = await until_type(ws, "error")
        assert "set by the server" in refused[-1]["error"]
        await ws.send(json.dumps({"op": "abort", "session_id": alice.session_id}))
        answer = await until_type(ws, "aborted")
        assert answer[-1]["aborted"] is False
    assert engine.abort_session(alice.session_id, user_id="alice") is True
    assert (await asyncio.wait_for(alice.result(), WAIT)).status == "aborted"
