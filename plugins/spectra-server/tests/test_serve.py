"""``spectra serve`` as a real subprocess: startup checks, and SIGTERM under load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from spectra_server._serve import is_loopback

KEY = "drain-test-key-0123456789"
#: Streaming runs in flight when SIGTERM arrives (SPECTRA_DRAIN_RUNS to change it).
N_RUNS = int(os.environ.get("SPECTRA_DRAIN_RUNS", "50"))
SPECTRA = str(Path(sys.executable).parent / "spectra")

SLOW_PLUGIN = '''
"""A model provider that streams its words slowly (a real plugin, found by entry point)."""
import asyncio
import attrs
from spectra_core import hookimpl
from spectra_core.agent.provider import ProviderDone, TextDelta
from spectra_core.models import AssistantMessage


@attrs.frozen
class SlowOptions:
    words: int = 20
    delay: float = 0.05


class Slow:
    def __init__(self, options):
        self.options = options

    async def stream(self, request):
        text = ""
        for i in range(self.options.words):
            await asyncio.sleep(self.options.delay)
            piece = f"w{i} "
            text += piece
            yield TextDelta(piece)
        yield ProviderDone(AssistantMessage(text, model=request.model.id, stop_reason="stop"))

    async def aclose(self):
        pass


@hookimpl
def spectra_register_model_providers(register):
    register("slow", Slow, SlowOptions)
'''


def _slow_plugin(tmp: Path) -> Path:
    """A directory holding an installed distribution ``slowprov`` (its module and its
    dist-info with a ``spectra`` entry point), to put on PYTHONPATH."""
    site = tmp / "site"
    (site / "slowprov-0.1.dist-info").mkdir(parents=True)
    (site / "slowprov.py").write_text(SLOW_PLUGIN)
    (site / "slowprov-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: slowprov\nVersion: 0.1\n"
    )
    (site / "slowprov-0.1.dist-info" / "entry_points.txt").write_text(
        "[spectra]\nslow = slowprov\n"
    )
    return site


def _config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "spectra.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [engine]
            max_concurrent_sessions = {N_RUNS * 2}

            [store]
            backend = "memory"

            [event_log]
            backend = "memory"

            [model]
            provider = "slow"
            words = 20
            delay = 0.05
            """
        )
        + extra
    )
    return path


KEYS_SECTION = """
[server]
drain_timeout = "60s"

[[server.api_keys]]
key = "${DRAIN_KEY}"
tenant = "acme"
user = "alice"
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(_slow_plugin(tmp_path)),
        "DRAIN_KEY": KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        SPECTRA,
        "serve",
        "--config",
        str(_config(tmp_path, KEYS_SECTION)),
        "--port",
        "0",
        "--log-level",
        "warning",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    assert "listening on http://127.0.0.1:" in line, line
    url = line.split("listening on ")[1].strip()
    try:
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _stream(
    client: httpx.AsyncClient, started: asyncio.Event, count: list[int]
) -> list[dict[str, Any]]:
    events = []
    async with aconnect_sse(
        client, "POST", "/v1/runs", json={"input": "go"}, headers={"Accept": "text/event-stream"}
    ) as source:
        async for sse in source.aiter_sse():
            if not sse.data:
                continue
            event = json.loads(sse.data)
            events.append(event)
            if (
                event["type"] == "message_update"
                and len([e for e in events if e["type"] == "message_update"]) == 1
            ):
                count[0] += 1
                if count[0] == N_RUNS:
                    started.set()
    return events


async def test_sigterm_under_load_loses_no_run(
    served: tuple[asyncio.subprocess.Process, str],
) -> None:
    proc, url = served
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=N_RUNS + 10)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=120, limits=limits
    ) as client:
        started = asyncio.Event()
        count = [0]
        streams = [asyncio.ensure_future(_stream(client, started, count)) for _ in range(N_RUNS)]
        await asyncio.wait_for(started.wait(), 120)  # every run is streaming its answer
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while (await client.get("/readyz")).status_code != 503:
            await asyncio.sleep(0)
        readyz_after = time.monotonic() - sent
        assert not all(s.done() for s in streams), "readyz turned 503 only after the runs ended"
        late = await client.post("/v1/runs", json={"input": "too late"})
        assert late.status_code == 503 and late.json()["error"] == "EngineDrainingError"
        assert int(late.headers["retry-after"]) >= 1
        results = await asyncio.gather(*streams)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    for events in results:  # every stream ended with its terminal event, the run complete
        assert events[-1]["type"] == "run_end" and events[-1]["status"] == "completed"
        text = "".join(e["delta"]["text"] for e in events if e["type"] == "message_update")
        assert text == "".join(f"w{i} " for i in range(20))
    print(f"readyz 503 {readyz_after * 1000:.0f} ms after SIGTERM with {N_RUNS} runs in flight")


async def test_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(_slow_plugin(tmp_path))}
    proc = await asyncio.create_subprocess_exec(
        SPECTRA,
        "serve",
        "--config",
        str(_config(tmp_path)),
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "not a loopback address" in err.decode() and "--insecure" in err.decode()


async def test_insecure_serves_a_public_address_as_anonymous(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(_slow_plugin(tmp_path))}
    proc = await asyncio.create_subprocess_exec(
        SPECTRA,
        "serve",
        "--config",
        str(_config(tmp_path)),
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--insecure",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    port = line.rsplit(":", 1)[1].strip()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/v1/sessions")).json() == {"sessions": [], "next_cursor": None}
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 60) == 0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.3.4.5", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_runs_past_the_grace_period_are_aborted_and_saved(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    config = tmp_path / "grace.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [store]
            backend = "fs"
            directory = "{sessions}"
            durability = "none"

            [model]
            provider = "slow"
            words = 1000
            delay = 0.05

            [server]
            drain_timeout = "200ms"
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(_slow_plugin(tmp_path))}
    proc = await asyncio.create_subprocess_exec(
        SPECTRA,
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--log-level",
        "warning",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    url = (
        (await asyncio.wait_for(proc.stdout.readline(), 60))
        .decode()
        .split("listening on ")[1]
        .strip()
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            started = asyncio.Event()
            count = [0]
            n = 5
            streams = [
                asyncio.ensure_future(_stream_n(client, started, count, n)) for _ in range(n)
            ]
            await asyncio.wait_for(started.wait(), 120)
            proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*streams)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    from spectra_core import SessionManager
    from spectra_fs import FileSystemSessionStore

    manager = SessionManager(FileSystemSessionStore(sessions))
    for events in results:
        assert events[-1]["type"] == "run_end" and events[-1]["status"] == "aborted"
        streamed = "".join(e["delta"]["text"] for e in events if e["type"] == "message_update")
        session = await manager.load(events[0]["session_id"])
        saved = [
            e for e in session.entries if e.type == "message" and e.message.role == "assistant"
        ]
        assert saved and saved[-1].message.text == streamed  # the partial answer was kept


async def _stream_n(
    client: httpx.AsyncClient, started: asyncio.Event, count: list[int], n: int
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with aconnect_sse(
        client, "POST", "/v1/runs", json={"input": "go"}, headers={"Accept": "text/event-stream"}
    ) as source:
        async for sse in source.aiter_sse():
            if sse.data:
                events.append(json.loads(sse.data))
                if len(events) == 4:  # agent_start, turn_start, message_start, first delta
                    count[0] += 1
                    if count[0] == n:
                        started.set()
    return events
