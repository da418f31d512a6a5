"""WebSocket transport for spectra (transport ``ws``)."""

from ._plugin import WsOptions, create_ws_transport
from ._transport import CloseCode, RunControl, WsTransport, ws_message

__all__ = [
    "CloseCode",
    "RunControl",
    "WsOptions",
    "WsTransport",
    "create_ws_transport",
    "ws_message",
]
