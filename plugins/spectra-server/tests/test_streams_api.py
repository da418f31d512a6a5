"""SSE and WebSocket streams, join/resume, abort — and that nobody else can reach them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from httpx_sse import aconnect_sse
from server_helpers import KEYS, make_engine, make_settings

from spectra_core import SessionEngine
from spectra_core.errors import ConfigError
from spectra_core.testing.asgi_server import serve_asgi
from spectra_core.testing.providers import GatedProvider
from spectra_memory import InMemorySessionStore
from spectra_server import create_app

Clients = dict[str, httpx.AsyncClient]
SSE = {"Accept": "text/event-stream"}


async def _events(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    out = []
    async with aconnect_sse(client, method, path, **kwargs) as source:
        response = source.response
        async for sse in source.aiter_sse():
            if not sse.data:  # the stream's opening "retry:" advice
                continue
            event = json.loads(sse.data)
            assert sse.event == event["type"] and sse.id == f"{event['run_id']}:{event['seq']}"
            out.append(event)
    return response, out


async def test_post_runs_streams_the_run_to_its_terminal_event(clients: Clients) -> None:
    response, events = await _events(
        clients["alice"], "POST", "/v1/runs", json={"input": "stream me"}, headers=SSE
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    run_id, session_id = response.headers["X-Run-Id"], response.headers["X-Session-Id"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "agent_start" and events[-1]["type"] == "run_end"
    assert events[-1]["status"] == "completed"
    assert {(e["run_id"], e["session_id"]) for e in events} == {(run_id, session_id)}
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "message_update")
    assert text == "echo: stream me"

    _, more = await _events(
        clients["alice"],
        "POST",
        f"/v1/sessions/{session_id}/runs",
        json={"input": "again"},
        headers=SSE,
    )
    assert more[-1]["status"] == "completed" and more[0]["session_id"] == session_id


async def test_join_and_resume_after_last_event_id(clients: Clients) -> None:
    alice = clients["alice"]
    run = (await alice.post("/v1/runs", json={"input": "resume me"})).json()
    path = f"/v1/runs/{run['run_id']}/events"
    response, everything = await _events(alice, "GET", path)
    assert response.headers["X-Run-Id"] == run["run_id"]
    assert response.headers["X-Session-Id"] == run["session_id"]
    assert everything[-1]["type"] == "run_end"
    cut = everything[2]
    _, rest = await _events(
        alice, "GET", path, headers={"Last-Event-ID": f"{run['run_id']}:{cut['seq']}"}
    )
    assert rest == everything[3:]
    done = await alice.get(
        path, headers={"Last-Event-ID": f"{run['run_id']}:{everything[-1]['seq']}"}
    )
    assert done.status_code == 204  # nothing left: an EventSource stops reconnecting
    bad = await alice.get(path, headers={"Last-Event-ID": "other-run:1"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    missing = await alice.get("/v1/runs/no-such-run/events")
    assert missing.status_code == 404 and missing.json()["error"] == "RunLogNotFound"


@pytest.fixture
async def gated() -> AsyncIterator[tuple[GatedProvider, str]]:
    provider = GatedProvider()
    engine = make_engine(provider=provider)
    engine.start()
    async with serve_asgi(create_app(engine, make_settings())) as url:
        yield provider, url
    provider.release()
    await engine.stop(drain=False)


async def _data(it: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for sse in it:
        if sse.data:
            yield sse


def _client(url: str, name: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEYS[name]}, timeout=30)


async def test_abort_ends_the_stream_with_aborted(gated: tuple[GatedProvider, str]) -> None:
    provider, url = gated
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        async with aconnect_sse(
            alice, "POST", "/v1/runs", json={"input": "x"}, headers=SSE
        ) as source:
            run_id = source.response.headers["X-Run-Id"]
            session_id = source.response.headers["X-Session-Id"]
            events = _data(source.aiter_sse())
            first = json.loads((await anext(events)).data)
            assert first["type"] == "agent_start"
            await provider.started.wait()
            busy = await alice.post(f"/v1/sessions/{session_id}/runs", json={"input": "y"})
            assert busy.status_code == 409 and busy.json()["error"] == "SessionBusyError"
            assert (await bob.post(f"/v1/runs/{run_id}/abort")).status_code == 404
            aborted = await alice.post(f"/v1/runs/{run_id}/abort")
            assert aborted.json() == {"run_id": run_id, "aborted": True}
            last = [json.loads(sse.data) async for sse in events][-1]
        assert last["type"] == "run_end" and last["status"] == "aborted"
        again = await alice.post(f"/v1/runs/{run_id}/abort")
        assert again.json() == {"run_id": run_id, "aborted": False}


async def test_another_principals_run_is_404(clients: Clients) -> None:
    run = (await clients["alice"].post("/v1/runs", json={"input": "mine"})).json()
    for name in ("bob", "mallory"):
        other = clients[name]
        events = await other.get(f"/v1/runs/{run['run_id']}/events")
        abort = await other.post(f"/v1/runs/{run['run_id']}/abort")
        for response in (events, abort):
            assert response.status_code == 404, (name, response.text)
            assert response.json()["error"] == "RunLogNotFound"


async def test_ownership_of_a_run_started_elsewhere_comes_from_its_log(
    engine: SessionEngine,
) -> None:
    """A run this app did not start (another replica, the engine directly) is checked
    through the session its first logged event names."""
    handle = await engine.start_run("alice", "direct", options={"tenant_id": "acme"})
    await handle.result()
    async with serve_asgi(create_app(engine, make_settings())) as url:
        for name, status in (("alice", 200), ("bob", 404), ("mallory", 404)):
            async with _client(url, name) as client:
                response = await client.get(f"/v1/runs/{handle.run_id}/events")
                assert response.status_code == status, name


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/v1/ws"


async def _until_end(ws: Any, run_id: str) -> list[dict[str, Any]]:
    events = []
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "event" and message["data"]["run_id"] == run_id:
            events.append(message["data"])
        if message["type"] == "end" and message["run_id"] == run_id:
            return events


async def test_websocket_starts_runs_and_keeps_others_runs_out(
    base_url: str, clients: Clients
) -> None:
    theirs = (await clients["bob"].post("/v1/runs", json={"input": "bob's"})).json()
    headers = {"Authorization": f"Bearer {KEYS['alice']}"}
    async with websockets.connect(_ws_url(base_url), additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "start", "input": "over ws"}))
        subscribed = json.loads(await ws.recv())
        assert subscribed["type"] == "subscribed"
        run_id = subscribed["run_id"]
        events = await _until_end(ws, run_id)
        assert events[-1]["type"] == "run_end" and events[-1]["status"] == "completed"
        session_id = events[0]["session_id"]
        assert (await clients["alice"].get(f"/v1/sessions/{session_id}")).json()[
            "tenant_id"
        ] == "acme"

        await ws.send(json.dumps({"op": "subscribe", "run_id": theirs["run_id"], "ref": 1}))
        refused = json.loads(await ws.recv())
        assert refused["type"] == "error" and refused["kind"] == "RunLogNotFound"
        await ws.send(json.dumps({"op": "start", "input": "x", "session_id": theirs["session_id"]}))
        refused = json.loads(await ws.recv())
        assert refused["type"] == "error" and refused["kind"] == "SessionNotFoundError"
        await ws.send(json.dumps({"op": "abort", "session_id": theirs["session_id"]}))
        assert json.loads(await ws.recv())["aborted"] is False
        await ws.send(json.dumps({"op": "start", "input": "x", "user_id": "bob"}))
        assert json.loads(await ws.recv())["type"] == "error"


async def test_websocket_follows_own_sessions_only(base_url: str, clients: Clients) -> None:
    mine = (await clients["alice"].post("/v1/runs", json={"input": "first"})).json()
    theirs = (await clients["bob"].post("/v1/runs", json={"input": "bob's"})).json()
    headers = {"Authorization": f"Bearer {KEYS['alice']}"}
    async with websockets.connect(_ws_url(base_url), additional_headers=headers) as ws:
        await ws.send(json.dumps({"op": "subscribe", "session_id": theirs["session_id"]}))
        refused = json.loads(await ws.recv())
        assert refused["type"] == "error" and refused["kind"] == "SessionNotFoundError"
        after = f"{mine['run_id']}:1"
        await ws.send(
            json.dumps({"op": "subscribe", "session_id": mine["session_id"], "after": after})
        )
        assert json.loads(await ws.recv())["type"] == "subscribed"
        rest = await _until_run_end(ws)
        assert [e["seq"] for e in rest] == list(range(2, len(rest) + 2))
        path = f"/v1/sessions/{mine['session_id']}/runs"
        second = (await clients["alice"].post(path, json={"input": "second"})).json()
        events = await _until_run_end(ws)
    assert {e["run_id"] for e in events} == {second["run_id"]}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def _until_run_end(ws: Any) -> list[dict[str, Any]]:
    events = []
    while not events or events[-1]["type"] != "run_end":
        message = json.loads(await ws.recv())
        assert message["type"] == "event", message
        events.append(message["data"])
    return events


async def test_websocket_without_credentials_is_refused(base_url: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(_ws_url(base_url)):
            pass
    assert info.value.response.status_code == 403


def test_an_engine_without_event_log_is_refused() -> None:
    from spectra_core import SessionManager

    engine = SessionEngine(SessionManager(InMemorySessionStore()))
    with pytest.raises(ConfigError, match=r"no event log.*\[event_log\]"):
        create_app(engine)
