"""Registers the ``sse`` transport with spectra."""

from __future__ import annotations

import attrs

from spectra_core import Register, hookimpl
from spectra_core.durations import Duration

from ._bridge import SseBridge


@attrs.frozen
class SseOptions:
    """``[transport] backend = "sse"``: heartbeat, reconnect advice and slow-client limits."""

    heartbeat_interval: Duration = attrs.field(default=Duration(15.0))
    reconnect_timeout: Duration = attrs.field(default=Duration(5.0))
    max_attempts: int = 10
    send_timeout: Duration = attrs.field(default=Duration(10.0))
    client_buffer: int = 256


def create_sse_bridge(options: SseOptions) -> SseBridge:
    """Server-Sent Events: SseBridge and create_sse_response, resumable by Last-Event-ID."""
    return SseBridge(
        heartbeat_interval_ms=max(1, round(options.heartbeat_interval * 1000)),
        reconnect_timeout_ms=max(1, round(options.reconnect_timeout * 1000)),
        max_attempts=options.max_attempts,
        send_timeout_ms=max(1, round(options.send_timeout * 1000)),
        client_buffer=options.client_buffer,
    )


@hookimpl
def spectra_register_transports(register: Register) -> None:
    register("sse", create_sse_bridge, SseOptions)
