"""create_sse_response: a Starlette response streaming a bridge or a run, resumable."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from spectra_core.errors import InvalidArgumentError
from spectra_core.event_log import EventLogGap, RunLogNotFound

from ._bridge import RunStream, SseBridge, SseClient

__all__ = ["SseResponse", "create_sse_response"]

log = structlog.get_logger("spectra.sse")


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat", sep="\n")


class SseResponse(Response):
    """Streams one client's frames; answers 404/400/409/204 before streaming when the run
    is unknown, the ``Last-Event-ID`` is bad or too old, or there is nothing left to send."""

    def __init__(self, bridge: SseBridge, run_id: str, client_id: str, after: str | None) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self.bridge = bridge
        self.run_id = run_id
        self.client_id = client_id
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            client = await self.bridge.connect(self.client_id, self.run_id, self.after)
        except RunLogNotFound as exc:
            await _error(404, exc)(scope, receive, send)
            return
        except EventLogGap as exc:
            await _error(409, exc)(scope, receive, send)
            return
        except InvalidArgumentError as exc:
            await _error(400, exc)(scope, receive, send)
            return
        try:
            if await _nothing_left(client):
                await Response(status_code=204, background=self.background)(scope, receive, send)
                return
            bridge = self.bridge
            inner = EventSourceResponse(
                client.frames(bridge.reconnect_timeout_ms),
                headers={"X-Client-Id": client.id},
                ping=bridge.heartbeat_interval_ms / 1000,
                ping_message_factory=_heartbeat,
                background=self.background,
            )  # no send_timeout: the bridge's watchdog cuts off clients stuck in _timed
            client.stream = asyncio.ensure_future(inner(scope, receive, _timed(client, send)))
            try:
                await asyncio.wait({client.stream})
            except asyncio.CancelledError:
                client.stream.cancel()
                raise
            if client.stream.cancelled():
                if not client.stuck:  # cut by client.end(): finish the body cleanly
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                client.stream.result()
        finally:
            await client.disconnect()


def _timed(client: SseClient, send: Send) -> Send:
    """``send`` noting when a send starts and ends, for the bridge's send watchdog."""
    loop = asyncio.get_running_loop()

    async def timed(message: Message) -> None:
        client.sending_since = loop.time()
        try:
            await send(message)
        finally:
            client.sending_since = None

    return timed


async def _nothing_left(client: SseClient) -> bool:
    """Whether the run has ended before anything after the client's id (then 204 tells an
    EventSource to stop reconnecting). Gives the log two turns to say so; a slower log
    streams an empty response instead, which is correct but costs the client a retry."""
    for _ in range(2):
        await asyncio.sleep(0)
    first, pump = client.first, client.pump
    if first is not None:
        return (
            first.done()
            and not first.cancelled()
            and isinstance(first.exception(), StopAsyncIteration)
            and client.queue.empty()
        )
    return (
        pump is not None
        and pump.done()
        and client.pumped == 0
        and client.end_reason == "ended"
        and client.queue.qsize() <= 1  # only the end marker
    )


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc), "kind": type(exc).__name__}, status_code=status)


def create_sse_response(
    source: SseBridge | RunStream, request: Request, *, client_id: str | None = None
) -> Response:
    """A response streaming ``source`` (a bridge's broadcasts, or ``bridge.run_stream(id)``)
    to the client of ``request``; return it from a Starlette or FastAPI endpoint.

    The client resumes after the ``Last-Event-ID`` header (or ``?last_event_id=``); its
    id is ``client_id``, else the ``X-Client-Id`` header or ``?client_id=``, else new.
    """
    if isinstance(source, SseBridge):
        bridge, run_id = source, source.stream_id
    elif isinstance(source, RunStream):
        bridge, run_id = source.bridge, source.run_id
    else:
        raise InvalidArgumentError(f"expected an SseBridge or a RunStream, got {source!r}")
    after: Any = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    cid = (
        client_id
        or request.headers.get("x-client-id")
        or request.query_params.get("client_id")
        or uuid.uuid4().hex
    )
    return SseResponse(bridge, run_id, cid, after or None)
