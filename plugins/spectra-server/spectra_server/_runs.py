"""Run routes: start a run (waiting for its result, or streaming it), join, abort."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spectra_core.engine import RunHandle, RunOptions, RunResult
from spectra_core.errors import InvalidArgumentError
from spectra_core.models import UserMessage
from spectra_core.serde import converter
from spectra_sse import create_sse_response

from ._auth import Principal
from ._context import Server
from ._json import JsonResponse
from ._ops import operation
from ._problems import BodyTooLargeError

__all__ = ["parse_run_request", "result_body", "start_run"]

RUN_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("Malformed request, input or option", "Problem"),
    401: ("Missing or invalid credentials", "Problem"),
    409: ("The session already has a run in progress", "Problem"),
    413: ("Body or input over the limit", "Problem"),
    429: ("Rate limited (see Retry-After)", "Problem"),
    503: ("Draining, at capacity or not started (see Retry-After)", "Problem"),
}


def _input(value: object, max_chars: int) -> str | UserMessage:
    if isinstance(value, str):
        text = value
        message: str | UserMessage = value
    elif isinstance(value, list):
        try:
            message = converter.structure({"role": "user", "content": value}, UserMessage)
        except Exception as exc:
            raise InvalidArgumentError(
                "'input': expected text or a list of content blocks "
                f'({{"type": "text", "text": ...}} or {{"type": "image", ...}}): {exc}'
            ) from None
        text = message.text
    else:
        raise InvalidArgumentError(
            f"'input': expected text or a list of content blocks, got {type(value).__name__}"
        )
    if len(text) > max_chars:
        raise BodyTooLargeError(
            f"input is {len(text):,} characters; this server's limit is {max_chars:,}"
        )
    return message


def parse_run_request(
    body: Mapping[str, Any], principal: Principal, max_chars: int
) -> tuple[str | UserMessage, RunOptions]:
    """The input and options of a run request; the tenant is always the caller's."""
    unknown = set(body) - {"input", "options"}
    if unknown:
        raise InvalidArgumentError(f"unknown field(s) {sorted(unknown)} (valid: input, options)")
    if "input" not in body:
        raise InvalidArgumentError("missing field 'input' (what the user says)")
    message = _input(body["input"], max_chars)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidArgumentError(f"'options': expected an object, got {type(options).__name__}")
    if "tenant_id" in options:
        raise InvalidArgumentError(
            "run option 'tenant_id' is set by the server from your credentials; leave it out"
        )
    if "tools" in options:
        raise InvalidArgumentError(
            "run option 'tools' cannot be given over HTTP: tools are the application's code"
        )
    opts = RunOptions.coerce({**options, "tenant_id": principal.tenant_id})
    return message, opts


def result_body(result: RunResult) -> dict[str, Any]:
    body: dict[str, Any] = converter.unstructure(result)
    body["text"] = result.text
    return body


async def start_run(
    server: Server, principal: Principal, body: Mapping[str, Any], session_id: object
) -> RunHandle:
    """Start a run for ``principal`` (on one of their sessions, or a new one)."""
    message, opts = parse_run_request(body, principal, server.max_input_chars)
    if session_id is not None:
        if not isinstance(session_id, str):
            raise InvalidArgumentError("'session_id' must be a string")
        await server.owned_session(principal, session_id, active_branch=True)
    handle = await server.engine.start_run(principal.user_id, message, session_id, opts)
    server.remember_run(handle.run_id, handle.session_id, (principal.tenant_id, principal.user_id))
    return handle


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def _start(
    server: Server, request: Request, principal: Principal, session_id: str | None
) -> Response:
    body = await server.json_body(request)
    handle = await start_run(server, principal, body, session_id)
    headers = {"X-Session-Id": handle.session_id, "X-Run-Id": handle.run_id}
    if wants_stream(request):
        from ._streams import WithHeaders

        stream = create_sse_response(server.bridge.run_stream(handle.run_id), request)
        return WithHeaders(stream, headers)
    result = await handle.result()
    return JsonResponse(result_body(result), headers=headers)


@operation(
    "POST",
    "/v1/runs",
    "Run one turn in a new session (SSE stream with Accept: text/event-stream)",
    request="RunRequest",
    event_stream=True,
    responses={200: ("The run's result", "RunResult"), **RUN_ERRORS},
)
async def create_run(server: Server, request: Request, principal: Principal) -> Response:
    return await _start(server, request, principal, None)


@operation(
    "POST",
    "/v1/sessions/{session_id}/runs",
    "Run one turn in a session (SSE stream with Accept: text/event-stream)",
    request="RunRequest",
    event_stream=True,
    responses={
        200: ("The run's result", "RunResult"),
        **RUN_ERRORS,
        404: ("No such session for this caller", "Problem"),
    },
)
async def create_session_run(server: Server, request: Request, principal: Principal) -> Response:
    return await _start(server, request, principal, request.path_params["session_id"])
