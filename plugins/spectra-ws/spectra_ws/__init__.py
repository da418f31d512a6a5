"""WebSocket transport for spectra (transport ``ws``)."""

from ._engine_control import EngineControl
from ._plugin import WsOptions, create_ws_transport
from ._transport import CloseCode, RunControl, WsTransport, ws_message

__all__ = [
    "CloseCode",
    "EngineControl",
    "RunControl",
    "WsOptions",
    "WsTransport",
    "create_ws_transport",
    "ws_message",
]
