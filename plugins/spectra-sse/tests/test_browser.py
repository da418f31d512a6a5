"""A real browser: headless Chromium's EventSource is cut off mid-run, reconnects by
itself with Last-Event-ID and ends with every event exactly once, in order."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from sse_helpers import run_event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from spectra_core import EventType
from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import MemoryEventLog
from spectra_sse import SseBridge, create_sse_response

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT = 60.0  # a browser start on a loaded machine; a safety net, never a measurement

PAGE = """<!doctype html>
<html><body><script>
const seen = [];
const source = new EventSource("/runs/browser-run/events");
function report(path, body) {
  return fetch(path, {method: "POST", body: JSON.stringify(body)});
}
source.addEventListener("message_update", (e) => {
  seen.push(e.lastEventId);
  report("/seen", {id: e.lastEventId});
});
source.addEventListener("run_end", (e) => {
  seen.push(e.lastEventId);
  source.close();
  report("/done", {ids: seen});
});
</script></body></html>
"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="chromium is not installed (.ci/run installs it; apt-get install chromium)",
)


async def test_eventsource_reconnects_and_gets_every_event_once(tmp_path: Path) -> None:
    assert CHROMIUM is not None, "chromium is required in CI: .ci/run installs it"
    log = MemoryEventLog()
    bridge = SseBridge(reconnect_timeout_ms=100, log=log)
    seen: list[str] = []
    seen_changed = asyncio.Event()
    done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    resumes: list[str] = []

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def events(request: Request) -> Response:
        last = request.headers.get("last-event-id")
        if last:
            resumes.append(last)
        return create_sse_response(bridge.run_stream(request.path_params["run_id"]), request)

    async def on_seen(request: Request) -> Response:
        seen.append(json.loads(await request.body())["id"])
        seen_changed.set()
        return Response(status_code=204)

    async def on_done(request: Request) -> Response:
        if not done.done():
            done.set_result(json.loads(await request.body())["ids"])
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/runs/{run_id}/events", events),
            Route("/seen", on_seen, methods=["POST"]),
            Route("/done", on_done, methods=["POST"]),
        ]
    )

    async def wait_seen(n: int) -> None:
        async def poll() -> None:
            while len(seen) < n:
                seen_changed.clear()
                await seen_changed.wait()

        await asyncio.wait_for(poll(), WAIT)

    await log.open("browser-run")
    for seq in range(1, 6):
        await log.append(run_event("browser-run", seq))
    async with serve_asgi(app) as url:
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--remote-debugging-port=0",  # keeps the headless browser open on the page
            f"{url}/",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await wait_seen(5)
            for seq in range(6, 9):  # live events on the first connection
                await log.append(run_event("browser-run", seq))
            await wait_seen(8)
            # the server cuts the stream mid-run; the run goes on while the page is away
            for client in list(bridge.clients.values()):
                client.end("cut by the test")
            for seq in range(9, 15):
                await log.append(run_event("browser-run", seq))
            await wait_seen(14)
            await log.append(run_event("browser-run", 15, EventType.RUN_END))
            ids = await asyncio.wait_for(done, WAIT)
        finally:
            os.killpg(browser.pid, signal.SIGKILL)
            await browser.wait()
    assert ids == [f"browser-run:{seq}" for seq in range(1, 16)]
    assert resumes and resumes[0] == "browser-run:8"  # the browser resumed by itself
