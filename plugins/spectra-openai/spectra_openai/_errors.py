"""Turning SDK and HTTP failures into :class:`~spectra_core.agent.ProviderError`."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from typing import Any

import openai

from spectra_core.agent import ProviderError

__all__ = ["PROVIDER", "from_sdk_error", "malformed", "parse_retry_after"]

PROVIDER = "openai"

#: Statuses worth retrying besides 5xx (the SDK's own list).
_RETRYABLE = {408, 409, 429}

_HINTS = {
    400: "the server rejected the request; check the model options, messages and tools",
    401: "check api_key (or $OPENAI_API_KEY) for this server",
    403: "the api_key is not allowed to use this model or organization; check api_key, "
    "organization and model",
    404: "check the model name and base_url (it usually ends with /v1)",
    422: "the server could not process the request; check the model options, messages and tools",
}


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` in seconds or as an
    HTTP date (relative to ``now``, epoch seconds); ``None`` when absent or unreadable."""
    lower = {k.lower(): v for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _server_message(body: Any, fallback: str) -> str:
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    if isinstance(body, str) and body:
        return body
    return fallback


def from_sdk_error(
    exc: BaseException, *, model: str, base_url: str, now: float, chunks: int = 0
) -> ProviderError:
    """The :class:`ProviderError` for an exception raised by the SDK or its HTTP stack
    (``chunks``: how many stream chunks had arrived before it)."""
    where = f"model {model!r} at {base_url}"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _server_message(exc.body, exc.message)
        retryable = status in _RETRYABLE or status >= 500
        retry_after = parse_retry_after(exc.response.headers, now) if retryable else None
        if retryable:
            wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
            msg = f"{where} answered HTTP {status}: {detail} (temporary{wait})"
        else:
            hint = _HINTS.get(status, "the request was refused; check the provider options")
            msg = f"{where} answered HTTP {status}: {detail}; {hint}"
        return ProviderError(
            msg,
            retryable=retryable,
            retry_after=retry_after,
            status_code=status,
            provider=PROVIDER,
        )
    if isinstance(exc, openai.APITimeoutError):
        after = f" after {chunks} chunk(s) of the stream" if chunks else ""
        return ProviderError(
            f"{where} timed out{after}; raise timeout or check the server's load",
            retryable=True,
            provider=PROVIDER,
        )
    if isinstance(exc, openai.APIConnectionError) or _is_transport_error(exc):
        cause = exc.__cause__ or exc
        if chunks:
            msg = (
                f"the stream from {where} broke off after {chunks} chunk(s): "
                f"{type(cause).__name__}: {cause}; the answer is incomplete"
            )
        else:
            msg = (
                f"could not connect to {where}: {type(cause).__name__}: {cause}; "
                "check base_url and that the server is running"
            )
        return ProviderError(
            msg,
            retryable=True,
            provider=PROVIDER,
        )
    if isinstance(exc, openai.APIError):
        # An error object sent inside the stream (``data: {"error": {...}}``).
        detail = _server_message(exc.body, exc.message)
        return ProviderError(
            f"{where} reported an error in the stream: {detail}",
            retryable=False,
            provider=PROVIDER,
        )
    return ProviderError(
        f"calling {where} failed: {type(exc).__name__}: {exc}",
        retryable=False,
        provider=PROVIDER,
    )


def _is_transport_error(exc: BaseException) -> bool:
    """A raw httpx/httpcore transport error (older SDKs let them escape mid-stream)."""
    return any(
        cls.__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"}
        and cls.__name__ in {"TransportError", "NetworkError", "TimeoutException"}
        for cls in type(exc).__mro__
    )


def malformed(what: str, *, model: str, base_url: str) -> ProviderError:
    """A non-retryable error for a stream we cannot understand."""
    return ProviderError(
        f"model {model!r} at {base_url} sent a malformed stream: {what}; "
        "check that base_url is an OpenAI-compatible chat completions endpoint",
        retryable=False,
        provider=PROVIDER,
    )
