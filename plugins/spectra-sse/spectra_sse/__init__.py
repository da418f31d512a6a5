"""Server-Sent Events for spectra: SseBridge and create_sse_response (transport ``sse``)."""

from ._bridge import ReconnectInfo, RunStream, SseBridge, SseClient, SseClientWriter, sse_frame
from ._plugin import SseOptions, create_sse_bridge
from ._response import SseResponse, create_sse_response

__all__ = [
    "ReconnectInfo",
    "RunStream",
    "SseBridge",
    "SseClient",
    "SseClientWriter",
    "SseOptions",
    "SseResponse",
    "create_sse_bridge",
    "create_sse_response",
    "sse_frame",
]
