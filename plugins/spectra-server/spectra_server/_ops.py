"""Operations: each route's method, path and OpenAPI description, declared once.

The Starlette routes and ``/openapi.json`` are both built from :data:`OPERATIONS`, so the
document always describes the routes that exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

__all__ = ["OPERATIONS", "Operation", "operation"]


@attrs.frozen
class Operation:
    """One route. ``responses`` maps a status to ``(description, schema name or None)``;
    ``event_stream`` adds ``text/event-stream`` to the 200 response; ``public`` routes
    need no credentials."""

    method: str
    path: str
    operation_id: str
    summary: str
    endpoint: Callable[..., Awaitable[Any]]
    responses: Mapping[int, tuple[str, str | None]]
    request: str | None = None
    request_required: bool = True
    query: tuple[Mapping[str, Any], ...] = ()
    headers: tuple[Mapping[str, Any], ...] = ()
    event_stream: bool = False
    public: bool = False
    websocket: bool = False
    tag: str = "runs"


#: Every operation, in declaration order.
OPERATIONS: list[Operation] = []


def operation(method: str, path: str, summary: str, **kwargs: Any) -> Callable[[Any], Any]:
    """Declare the decorated endpoint ``fn(server, request)`` as an operation."""

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        OPERATIONS.append(
            Operation(method, path, fn.__name__, summary, fn, kwargs.pop("responses"), **kwargs)
        )
        return fn

    return decorate
