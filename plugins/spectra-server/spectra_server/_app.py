"""create_app: the spectra HTTP API as a Starlette application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from spectra_core.config import SpectraConfig
from spectra_core.engine import SessionEngine
from spectra_core.errors import ConfigError
from spectra_core.plugins import PluginRegistry

from . import _health, _runs, _sessions, _streams  # noqa: F401  (they declare operations)
from ._auth import Authenticator, build_authenticators
from ._context import Server
from ._json import JsonResponse
from ._openapi import openapi_document
from ._ops import OPERATIONS, Operation, operation
from ._problems import handle_http_exception, problem_for
from ._settings import ServerSettings, server_settings

__all__ = ["SERVER_KEY", "create_app", "server_of"]

#: Where the app keeps its :class:`Server` (``app.state.spectra``).
SERVER_KEY = "spectra"
API_TITLE = "spectra"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spectra-server")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


@operation(
    "GET",
    "/openapi.json",
    "This document",
    public=True,
    tag="meta",
    responses={200: ("The OpenAPI 3.1 document", "OpenApiDocument")},
)
async def openapi(server: Server, request: Request, principal: None) -> Response:
    return JsonResponse(openapi_document(OPERATIONS, API_TITLE, _version()))


def _endpoint(server: Server, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            principal = None if op.public else await server.principal(request)
            response: Response = await op.endpoint(server, request, principal)
        except Exception as exc:  # every error is a problem+json (500s are logged)
            return problem_for(exc)
        return response

    endpoint.__name__ = op.operation_id
    return endpoint


def create_app(
    engine: SessionEngine,
    settings: ServerSettings | None = None,
    *,
    authenticators: Sequence[Authenticator] | None = None,
    config: SpectraConfig | None = None,
    registry: PluginRegistry | None = None,
) -> Starlette:
    """The HTTP API over ``engine``; mount it in any Starlette or FastAPI application
    (``app.mount("/agents", create_app(engine))``).

    ``settings`` default to the ``[server]`` section of ``config`` (else the defaults).
    ``authenticators`` default to the settings' API keys and ``[server.auth]`` backend;
    with none, every caller is the anonymous principal. The caller starts and stops the
    engine (``spectra serve`` does it, with a drain on SIGTERM).
    """
    if engine.event_log is None:
        raise ConfigError(
            f"create_app: engine {engine.engine_id} has no event log, which the streaming "
            'routes read: configure [event_log] (e.g. backend = "memory") or pass '
            "SessionEngine(event_log=MemoryEventLog())"
        )
    if settings is None:
        settings = server_settings(config)
    if authenticators is None:
        authenticators = build_authenticators(settings, config, registry)
    server = Server(engine, settings, authenticators)
    routes: list[BaseRoute] = [
        Route(op.path, _endpoint(server, op), methods=[op.method])
        for op in OPERATIONS
        if not op.websocket
    ]

    async def websocket(ws: WebSocket) -> None:
        await _streams.websocket_endpoint(server, ws)

    routes.append(WebSocketRoute("/v1/ws", websocket))
    middleware: list[Middleware] = []
    if settings.cors is not None:
        cors = settings.cors
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors.allow_origins,
                allow_methods=cors.allow_methods,
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                expose_headers=["X-Session-Id", "X-Run-Id", "Retry-After"],
                max_age=cors.max_age,
            )
        )
    handlers: dict[Any, Any] = {HTTPException: handle_http_exception}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    setattr(app.state, SERVER_KEY, server)
    return app


def server_of(app: Starlette) -> Server:
    """The :class:`Server` state of an app made by :func:`create_app`."""
    server: Server = getattr(app.state, SERVER_KEY)
    return server
