"""``spectra serve``: the HTTP API on uvicorn, drained on SIGTERM.

On SIGTERM (or Ctrl-C): ``/readyz`` answers 503 at once, new runs get 503
``EngineDrainingError``, in-flight runs finish (aborted and saved after the grace period
``drain_timeout``), their open streams get their terminal events, then uvicorn closes
the connections (at most ``shutdown_timeout``) and the process exits 0. A second signal
stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
from typing import Any

import structlog
import uvicorn

from spectra_core.cli._common import add_config_option, fail, load
from spectra_core.config import SpectraConfig, build_engine
from spectra_core.engine import SessionEngine
from spectra_core.errors import ConfigError, SpectraError
from spectra_core.logging import configure_logging
from spectra_core.plugins import PluginRegistry

from ._app import create_app, server_of
from ._auth import build_authenticators
from ._settings import ServerSettings, server_settings

__all__ = ["add_parser", "is_loopback", "serve"]

log = structlog.get_logger("spectra.server")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the HTTP API (runs, sessions, SSE, WebSocket) with uvicorn"
    )
    add_config_option(p)
    p.add_argument("--host", default=None, help="address to listen on (default: [server] host)")
    p.add_argument("--port", type=int, default=None, help="port (default: [server] port, 8000)")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening on a non-loopback address without any API key",
    )
    p.add_argument("--log-level", default="info", help="log level (default: info)")
    p.set_defaults(handler=_main)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _main(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        config, registry = load(args.config)
        settings = server_settings(config)
        host = args.host or settings.host
        port = settings.port if args.port is None else args.port
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port: expected 0-65535, got {port}")
        authenticators = build_authenticators(settings, config, registry)
        if (
            not authenticators
            and not is_loopback(host)
            and not (args.insecure or settings.insecure)
        ):
            raise ConfigError(
                f"refusing to serve on {host}, which is not a loopback address, without any "
                "API key: add [[server.api_keys]] (or [server.auth]) to the config, or pass "
                "--insecure to serve everyone as the anonymous user"
            )
        engine = _engine(config, registry)
    except SpectraError as exc:
        return fail(exc, 2)
    app = create_app(engine, settings, authenticators=authenticators)
    try:
        return asyncio.run(serve(app, engine, settings, host, port))
    except KeyboardInterrupt:  # pragma: no cover - signals are handled in serve()
        return 130


def _engine(config: SpectraConfig, registry: PluginRegistry) -> SessionEngine:
    """The config's engine; with the ``memory`` event log when it names none (the
    streaming routes read the log). Its backends are closed by :func:`serve` once the
    connections are, not by ``stop()``: streams may still be read after the drain."""
    overrides: dict[str, Any] = {"close_backends": False}
    if config.event_log is None:
        from spectra_memory import MemoryEventLog

        overrides["event_log"] = MemoryEventLog()
    engine: SessionEngine = build_engine(config, registry, **overrides)
    return engine


class _Uvicorn(uvicorn.Server):
    """uvicorn, saying where it listens once bound (``--port 0`` picks a free port)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"spectra serve: listening on http://{host}:{port}", flush=True)


async def serve(
    app: Any, engine: SessionEngine, settings: ServerSettings, host: str, port: int
) -> int:
    """Start ``engine``, serve ``app`` until SIGTERM or SIGINT, drain, and return 0."""
    state = server_of(app)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
    )
    server = _Uvicorn(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    loop = asyncio.get_running_loop()
    drained: list[asyncio.Task[None]] = []

    async def drain() -> None:
        try:
            await engine.stop(drain=True, drain_timeout=settings.drain_timeout)
        finally:
            log.info("drained; closing connections")
            server.should_exit = True

    def on_signal(signum: int) -> None:
        if drained:  # a second signal: stop now
            log.warning("second signal: exiting without waiting", signal=signum)
            server.force_exit = True
            server.should_exit = True
            return
        log.info("signal received: draining", signal=signal.Signals(signum).name)
        state.start_draining()
        drained.append(asyncio.ensure_future(drain()))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    engine.start()
    try:
        await server.serve()
        if drained:
            await drained[0]
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await engine.stop(drain=False)
        await _close_backends(engine)
    if not server.started:
        print("spectra serve: the server did not start (see the log above)", file=sys.stderr)
        return 1
    return 0


async def _close_backends(engine: SessionEngine) -> None:
    """Close the store, limiters, breaker and event log, each once, whatever one raises."""
    parts = [
        engine.session_manager.store,
        engine.rate_limiter,
        engine.circuit_breaker,
        engine.event_log,
    ]
    for part in {id(p): p for p in parts if p is not None}.values():
        aclose = getattr(part, "aclose", None)
        if aclose is None:
            continue
        try:
            await aclose()
        except Exception as exc:
            log.warning("not closed", part=type(part).__name__, error=repr(exc))
