"""Registers the ``ws`` transport with spectra."""

from __future__ import annotations

import attrs

from spectra_core import Register, hookimpl
from spectra_core.durations import Duration

from ._transport import WsTransport


@attrs.frozen
class WsOptions:
    """``[transport] backend = "ws"``: the per-socket outbox and the slow-client limit."""

    send_buffer: int = 256
    send_timeout: Duration = attrs.field(default=Duration(10.0))


def create_ws_transport(options: WsOptions) -> WsTransport:
    """WebSocket: run event streams with resume, ping/pong, start and abort over a socket."""
    return WsTransport(
        send_buffer=options.send_buffer,
        send_timeout_ms=max(1, round(options.send_timeout * 1000)),
    )


@hookimpl
def spectra_register_transports(register: Register) -> None:
    register("ws", create_ws_transport, WsOptions)
