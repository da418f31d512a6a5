"""Following runs: SSE responses, join/resume, abort, and the WebSocket transport —
each run reachable only by the principal that owns its session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from spectra_core.errors import InvalidArgumentError, SessionNotFoundError, SpectraError
from spectra_core.event_log import EventLog, LogEntry, RunLogNotFound
from spectra_core.ids import validate_id
from spectra_sse import create_sse_response
from spectra_ws import WsTransport

from ._auth import AuthenticationError, Principal
from ._context import Owner, Server
from ._json import JsonResponse
from ._ops import operation
from ._runs import start_run

__all__ = ["OwnedLog", "WithHeaders", "run_owner_check", "websocket_endpoint"]

_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("Malformed run id or Last-Event-ID", "Problem"),
    401: ("Missing or invalid credentials", "Problem"),
    404: ("No such run for this caller (or its events expired)", "Problem"),
}


class WithHeaders(Response):
    """Another response (an SSE stream) with extra headers on its start."""

    def __init__(self, inner: Response, headers: Mapping[str, str]) -> None:
        super().__init__()
        self.inner = inner
        self.extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.extra]}
            await send(message)

        await self.inner(scope, receive, send_with)


async def run_owner_check(server: Server, principal: Principal, run_id: str) -> None:
    """RunLogNotFound unless ``run_id`` is a run of a session of ``principal``: known
    from starting it here, else from the session named by its first logged event."""
    validate_id(run_id, "run id")
    owner = server.run_owner(run_id)
    if owner is None:
        it = await server.engine.subscribe(run_id)
        try:
            first: LogEntry = await anext(aiter(it))
        except StopAsyncIteration:
            raise RunLogNotFound(run_id) from None
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
        session_id = first.event.get("session_id")
        if not isinstance(session_id, str):
            raise RunLogNotFound(run_id)
        try:
            session = await server.owned_session(principal, session_id, active_branch=True)
        except (SessionNotFoundError, InvalidArgumentError):
            raise RunLogNotFound(run_id) from None
        owner = server.remember_run(run_id, session.id, (session.tenant_id, session.user_id))
    if not principal.owns(*owner[1]):
        raise RunLogNotFound(run_id)


def _after(request: Request) -> str | None:
    value = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    return value or None


@operation(
    "GET",
    "/v1/runs/{run_id}/events",
    "Join or resume a run's SSE stream (after Last-Event-ID)",
    event_stream=True,
    headers=({"name": "Last-Event-ID", "schema": {"type": "string"}},),
    query=({"name": "last_event_id", "schema": {"type": "string"}},),
    responses={
        200: ("The run's events", None),
        204: ("The run ended before anything after Last-Event-ID", None),
        409: ("The events after Last-Event-ID are no longer kept", "Problem"),
        **_ERRORS,
    },
)
async def run_events(server: Server, request: Request, principal: Principal) -> Response:
    run_id = request.path_params["run_id"]
    await run_owner_check(server, principal, run_id)
    after = _after(request)
    it = await server.engine.subscribe(run_id, after)  # its errors are problems, now
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()
    owner = server.run_owner(run_id)
    headers = {"X-Run-Id": run_id} | ({"X-Session-Id": owner[0]} if owner else {})
    return WithHeaders(create_sse_response(server.bridge.run_stream(run_id), request), headers)


@operation(
    "POST",
    "/v1/runs/{run_id}/abort",
    "Abort a run in progress (aborted: false when it is not running on this server)",
    responses={200: ("Whether this server aborted it", "AbortResult"), **_ERRORS},
)
async def abort_run(server: Server, request: Request, principal: Principal) -> Response:
    run_id = request.path_params["run_id"]
    await run_owner_check(server, principal, run_id)
    aborted = server.engine.abort_run(run_id, user_id=principal.user_id)
    return JsonResponse({"run_id": run_id, "aborted": aborted})


class OwnedLog:
    """The engine's event log as one principal sees it: others' runs are unknown."""

    def __init__(self, server: Server, principal: Principal, log: EventLog) -> None:
        self.server = server
        self.principal = principal
        self.log = log

    async def open(self, run_id: str, session_id: str | None = None) -> None:
        raise InvalidArgumentError("clients cannot open runs in the log")

    async def append(self, event: Mapping[str, Any]) -> LogEntry:
        raise InvalidArgumentError("clients cannot write to the log")

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[LogEntry]:
        await run_owner_check(self.server, self.principal, run_id)
        return await self.log.subscribe(run_id, after)

    async def session_runs(
        self, session_id: str, after_run: str | None = None
    ) -> AsyncIterator[str]:
        """The session's runs, if the session is the principal's (SessionNotFoundError
        otherwise, as for a missing one)."""
        session = await self.server.owned_session(self.principal, session_id, active_branch=True)
        owner = (session.tenant_id, session.user_id)
        runs = await self.log.session_runs(session_id, after_run)
        return self._remembered(runs, session_id, owner)

    async def _remembered(
        self, runs: AsyncIterator[str], session_id: str, owner: Owner
    ) -> AsyncIterator[str]:
        try:
            async for run_id in runs:
                self.server.remember_run(run_id, session_id, owner)  # no lookup per run
                yield run_id
        finally:
            aclose = getattr(runs, "aclose", None)
            if aclose is not None:
                await aclose()

    async def ping(self) -> None:
        await self.log.ping()

    async def aclose(self) -> None:
        """The engine's log is not this view's to close."""


class Control:
    """Starts and aborts runs for one principal's socket (``RunControl`` of spectra-ws).

    Not spectra-ws's ``EngineControl``: a session must be the principal's tenant's too
    (the engine checks the user only), and input and options pass the server's limits."""

    def __init__(self, server: Server, principal: Principal) -> None:
        self.server = server
        self.principal = principal

    async def start_run(self, request: Mapping[str, Any]) -> str:
        user = request.get("user_id")
        if user is not None and user != self.principal.user_id:
            raise InvalidArgumentError("'user_id' comes from your credentials; leave it out")
        body = {k: v for k, v in request.items() if k in ("input", "options")}
        session_id = request.get("session_id")
        handle = await start_run(self.server, self.principal, body, session_id)
        return handle.run_id

    def abort_session(self, session_id: str) -> bool:
        owner = self.server.session_owner(session_id)
        if owner is None or not self.principal.owns(*owner):
            return False
        return self.server.engine.abort_session(session_id, user_id=self.principal.user_id)


async def websocket_endpoint(server: Server, websocket: WebSocket) -> None:
    """``/v1/ws``: the WebSocket protocol of spectra-ws, for the authenticated caller
    (refused with close code 1008 before the handshake completes otherwise)."""
    try:
        principal = await server.principal(websocket)
    except AuthenticationError:
        await websocket.close(code=1008, reason="authentication required")
        return
    log = server.engine.event_log
    assert log is not None  # create_app refuses an engine without one
    transport = WsTransport(OwnedLog(server, principal, log), Control(server, principal))
    with contextlib.suppress(SpectraError):
        await transport.handle(websocket)
