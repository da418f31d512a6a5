"""Errors as RFC 9457 ``application/problem+json``, with ``Retry-After`` on 429 and 503."""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from spectra_core.errors import (
    CapacityError,
    CircuitOpenError,
    ConflictError,
    EngineDrainingError,
    EngineNotStartedError,
    EntryNotFoundError,
    InvalidArgumentError,
    RateLimitedError,
    SessionBusyError,
    SessionNotFoundError,
    SpectraError,
    StoreError,
)
from spectra_core.event_log import EventLogGap, RunLogNotFound

from ._auth import AuthenticationError

__all__ = [
    "PROBLEM_TYPE_PREFIX",
    "BodyTooLargeError",
    "NotFoundError",
    "ProblemResponse",
    "problem",
    "problem_for",
    "status_for",
]

log = structlog.get_logger("spectra.server")
_encode = msgspec.json.Encoder().encode
#: ``type`` of every problem: this prefix and the error's class name.
PROBLEM_TYPE_PREFIX = "urn:spectra:error:"


class NotFoundError(SpectraError, LookupError):
    """No such resource for this principal (another principal's is the same 404)."""


class BodyTooLargeError(SpectraError):
    """The request body or the input is over the server's limit (answered 413)."""


_STATUS: list[tuple[type[BaseException], int]] = [
    (AuthenticationError, 401),
    (BodyTooLargeError, 413),
    (SessionNotFoundError, 404),
    (EntryNotFoundError, 404),
    (RunLogNotFound, 404),
    (NotFoundError, 404),
    (InvalidArgumentError, 400),
    (SessionBusyError, 409),
    (ConflictError, 409),
    (EventLogGap, 409),
    (RateLimitedError, 429),
    (CapacityError, 503),
    (EngineDrainingError, 503),
    (EngineNotStartedError, 503),
    (CircuitOpenError, 503),
    (StoreError, 503),  # after ConflictError: the store is down or refusing
]
#: Retry-After of a 503 that names no delay (capacity, drain): seconds.
DEFAULT_RETRY_AFTER = 1


class ProblemResponse(Response):
    media_type = "application/problem+json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


def status_for(exc: BaseException) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _title(name: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Error")).lower()
    return words[:1].upper() + words[1:]


def problem(
    status: int,
    error: str,
    detail: str,
    *,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    """A problem response; ``retry_after`` (seconds) becomes ``Retry-After``, rounded up."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + error,
        "title": _title(error),
        "status": status,
        "detail": detail,
        "error": error,
    }
    out = dict(headers or {})
    if status in (429, 503):
        seconds = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
        if not math.isfinite(seconds):
            seconds = 3600.0  # "never" would be no header; an hour is an honest bound
        out["Retry-After"] = str(max(1, math.ceil(seconds)))
        body["retry_after"] = max(1, math.ceil(seconds))
    if status == 401:
        out["WWW-Authenticate"] = 'Bearer realm="spectra"'
    return ProblemResponse(body, status_code=status, headers=out)


def problem_for(exc: BaseException) -> ProblemResponse:
    """The problem answering an exception raised by a route."""
    status = status_for(exc)
    if status == 500:
        log.error("request failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return problem(500, "InternalServerError", "the server failed; see its log")
    if isinstance(exc, StoreError) and status == 503:  # its message names internal hosts
        log.error("store unavailable", error=f"{type(exc).__name__}: {exc}")
        return problem(503, "StoreError", "the session store is unavailable; retry later")
    retry_after = getattr(exc, "retry_after", None)
    return problem(status, type(exc).__name__, str(exc), retry_after=retry_after)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route), 405 and the like, as problems."""
    assert isinstance(exc, HTTPException)
    names = {404: "NotFound", 405: "MethodNotAllowed"}
    headers = dict(exc.headers or {})
    return problem(
        exc.status_code, names.get(exc.status_code, "HTTPError"), exc.detail, headers=headers
    )


async def handle_spectra_error(request: Request, exc: Exception) -> Response:
    return problem_for(exc)
