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


async def events_through_runs(ws: ClientConnection, runs: int) -> list[dict[str, Any]]:
    """The events of a session subscription until ``runs`` runs have ended."""
    events: list[dict[str, Any]] = []
    while sum(m["event"] == "run_end" for m in events) < runs:
        message = await recv(ws)
        assert message["type"] == "event", message
        events.append(message)
    return events


async def test_a_socket_follows_a_session_across_its_runs_and_resumes_it(
    engine: SessionEngine,
) -> None:
    transport = WsTransport(engine.event_log)
    first = await engine.start_run("alice", "one")  # held by the provider's gate
    session_id = first.session_id
    async with connected(transport) as ws:
        await ws.send(json.dumps({"op": "subscribe", "session_id": session_id}))
        assert await recv(ws) == {"type": "subscribed", "session_id": session_id, "after": None}
        opening = await recv(ws)  # the run in progress, from its first event
        assert (opening["id"], opening["event"]) == (f"{first.run_id}:1", "agent_start")
        engine.default_provider.release()  # type: ignore[attr-defined]
        await asyncio.wait_for(first.result(), WAIT)
        second = await engine.start_run("alice", "two", session_id)
        await asyncio.wait_for(second.result(), WAIT)
        events = [opening, *await events_through_runs(ws, 2)]
    runs = [m["data"]["run_id"] for m in events]
    assert runs == sorted(runs, key=[first.run_id, second.run_id].index)
    assert {m["data"]["session_id"] for m in events} == {session_id}
    for run in (first.run_id, second.run_id):
        seqs = [int(m["id"].rsplit(":", 1)[1]) for m in events if m["data"]["run_id"] == run]
        assert seqs == list(range(1, len(seqs) + 1))  # each event once, in order

    missed_from = 3  # a client that saw the first three events comes back
    async with connected(transport) as ws:
        after = events[missed_from - 1]["id"]
        await ws.send(json.dumps({"op": "subscribe", "session_id": session_id, "after": after}))
        assert (await recv(ws))["after"] == after
        resumed = await events_through_runs(ws, 2)
    assert [m["id"] for m in resumed] == [m["id"] for m in events[missed_from:]]


async def test_a_session_subscription_refuses_ids_of_other_sessions(engine: SessionEngine) -> None:
    transport = WsTransport(engine.event_log)
    engine.default_provider.release()  # type: ignore[attr-defined]
    mine = await engine.start_run("alice", "one")
    other = await engine.start_run("bob", "two")
    await asyncio.wait_for(asyncio.gather(mine.result(), other.result()), WAIT)
    async with connected(transport) as ws:
        after = f"{other.run_id}:1"
        await ws.send(
            json.dumps({"op": "subscribe", "session_id": mine.session_id, "after": after})
        )
        error = await recv(ws)
        assert (error["type"], error["kind"]) == ("error", "RunLogNotFound")
        for bad in ({"session_id": "a b"}, {"session_id": mine.session_id, "run_id": "x"}, {}):
            await ws.send(json.dumps({"op": "subscribe", **bad}))
            assert (await recv(ws))["kind"] in ("InvalidArgumentError", "InvalidIdError")
        await ws.send(json.dumps({"op": "subscribe", "session_id": mine.session_id}))
        assert (await recv(ws))["type"] == "subscribed"
        await ws.send(json.dumps({"op": "unsubscribe", "session_id": mine.session_id}))
        assert await recv(ws) == {"type": "unsubscribed", "session_id": mine.session_id}
