"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (send traffic here?)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._context import Server
from ._json import JsonResponse
from ._ops import operation
from ._problems import DEFAULT_RETRY_AFTER

__all__: list[str] = []


@operation(
    "GET",
    "/healthz",
    "Liveness: the process answers",
    public=True,
    tag="health",
    responses={200: ("Alive", "Liveness")},
)
async def healthz(server: Server, request: Request, principal: None) -> Response:
    return JsonResponse({"status": "ok"})


@operation(
    "GET",
    "/readyz",
    "Readiness: the engine runs and its critical checks pass (503 while draining)",
    public=True,
    tag="health",
    responses={200: ("Ready", "Readiness"), 503: ("Not ready", "Readiness")},
)
async def readyz(server: Server, request: Request, principal: None) -> Response:
    if server.draining:  # answered without asking anything: SIGTERM makes it 503 at once
        body: dict[str, Any] = {"status": "draining", "ready": False}
        return JsonResponse(
            body, status_code=503, headers={"Retry-After": str(DEFAULT_RETRY_AFTER)}
        )
    report = await server.engine.health()
    body = report.to_dict()
    ready = report.ready
    body["ready"] = ready
    if ready:
        return JsonResponse(body)
    return JsonResponse(body, status_code=503, headers={"Retry-After": str(DEFAULT_RETRY_AFTER)})
