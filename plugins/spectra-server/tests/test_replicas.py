"""Two ``spectra serve`` replicas sharing Redis (store and event log): a run started on
one is streamed, cut, and resumed on the other with exactly the events it missed."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import aconnect_sse
from test_serve import SPECTRA, _slow_plugin

URL = os.environ.get("SPECTRA_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = "replica-test-key-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}
SSE = "text/event-stream"
WAIT = 60.0  # a safety net against hangs, never a measurement


def _redis_or_skip() -> None:
    try:
        client = redis.Redis.from_url(URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        why = f"Redis at {URL} is unreachable ({exc}); start one or set SPECTRA_REDIS_URL"
        if os.environ.get("SPECTRA_REQUIRE_REDIS") == "1":
            pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {why}")
        pytest.skip(why)


def _config(tmp: Path, prefix: str) -> Path:
    path = tmp / "spectra.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [store]
            backend = "redis"
            url = "{URL}"
            key_prefix = "{prefix}"

            [event_log]
            backend = "redis"
            url = "{URL}"
            key_prefix = "{prefix}"

            [model]
            provider = "slow"
            words = 30
            delay = 0.02

            [[server.api_keys]]
            key = "{KEY}"
            tenant = "acme"
            user = "alice"
            """
        )
    )
    return path


async def _replica(config: Path, site: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        SPECTRA,
        *("serve", "--config", str(config), "--port", "0", "--log-level", "warning"),
        env={**os.environ, "PYTHONPATH": str(site)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode()
    assert "listening on http://127.0.0.1:" in line, line
    return proc, line.split("listening on ")[1].strip()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[str]]:
    _redis_or_skip()
    prefix = f"spectra-test-{uuid.uuid4().hex[:12]}"
    config, site = _config(tmp_path, prefix), _slow_plugin(tmp_path)
    procs = [await _replica(config, site) for _ in range(2)]
    try:
        yield [url for _, url in procs]
    finally:
        for proc, _ in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        client = redis.Redis.from_url(URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


async def _read(source: Any, events: list[dict[str, Any]], stop_after: int | None) -> None:
    async for sse in source.aiter_sse():
        if sse.data:
            events.append({"id": sse.id, **json.loads(sse.data)})
            if stop_after is not None and len(events) == stop_after:
                return


async def test_a_stream_cut_on_one_replica_resumes_on_the_other(replicas: list[str]) -> None:
    one, other = replicas
    first: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=one, headers=HEADERS, timeout=WAIT) as client,
        aconnect_sse(
            client,
            "POST",
            "/v1/runs",
            json={"input": "go"},
            headers={"Accept": "text/event-stream"},
        ) as source,
    ):
        run_id = source.response.headers["X-Run-Id"]
        await asyncio.wait_for(_read(source, first, stop_after=8), WAIT)
    # the connection that started the run is gone; the run goes on on replica one
    rest: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=other, headers=HEADERS, timeout=WAIT) as client:
        async with aconnect_sse(
            client,
            "GET",
            f"/v1/runs/{run_id}/events",
            headers={"Last-Event-ID": first[-1]["id"]},
        ) as source:
            assert source.response.status_code == 200
            await asyncio.wait_for(_read(source, rest, stop_after=None), WAIT)
        stranger = await client.get(
            f"/v1/runs/{run_id}/events", headers={"Authorization": "Bearer nope-nope-nope-nope"}
        )
        assert stranger.status_code == 401
    events = first + rest
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["id"] for e in events] == [f"{run_id}:{e['seq']}" for e in events]
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "completed"
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "message_update")
    assert text == "".join(f"w{i} " for i in range(30))
    # the session is in the shared store: the other replica serves it too
    async with httpx.AsyncClient(base_url=other, headers=HEADERS, timeout=WAIT) as client:
        session = await client.get(f"/v1/sessions/{events[0]['session_id']}")
    assert session.status_code == 200
