"""Synthetic run events and the test app serving an SseBridge."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spectra_core import EventType, RunEvent, RunStatus
from spectra_memory import MemoryEventLog
from spectra_sse import SseBridge, create_sse_response


def run_event(run_id: str, seq: int, type: EventType = EventType.MESSAGE_UPDATE) -> dict[str, Any]:
    """A synthetic RunEvent as the engine would log it."""
    fields: dict[str, Any] = {}
    if type is EventType.MESSAGE_UPDATE:
        fields["delta"] = {"type": "text", "text": f"word{seq} "}
    if type is EventType.RUN_END:
        fields["status"] = RunStatus.COMPLETED
    event = RunEvent(
        type=type, session_id="s-1", run_id=run_id, seq=seq, timestamp=1.0e9 + seq, **fields
    )
    return event.to_dict()


async def append_run(
    log: MemoryEventLog, run_id: str, seqs: range, end_at: int | None = None
) -> None:
    for seq in seqs:
        kind = EventType.RUN_END if seq == end_at else EventType.MESSAGE_UPDATE
        await log.append(run_event(run_id, seq, kind))


def make_app(bridge: SseBridge) -> Starlette:
    async def run_events(request: Request) -> Response:
        return create_sse_response(bridge.run_stream(request.path_params["run_id"]), request)

    async def broadcast(request: Request) -> Response:
        return create_sse_response(bridge, request)

    return Starlette(
        routes=[
            Route("/runs/{run_id}/events", run_events),
            Route("/broadcast", broadcast),
        ]
    )
