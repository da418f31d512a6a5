"""``spectra check CONFIG [--ping]``: validate a config file (exit 2 listing every problem);
with ``--ping`` also build the backends and run their health checks (exit 1 if one fails)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..config import BackendConfig, SpectraConfig, build_backend, check_buildable, load_config
from ..errors import ConfigError
from ..plugins import PluginRegistry, load_plugins

_NO_CHECK = "ok (built; it has no health check)"
#: How long one backend's ping may take before it counts as failed (seconds).
PING_TIMEOUT = 10.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="validate a config file (exit 0 if valid, 2 if not); "
        "--ping: also reach every backend (exit 1 if one fails)",
    )
    p.add_argument("config", metavar="CONFIG", help="the TOML file to check")
    p.add_argument(
        "--ping",
        action="store_true",
        help="build the backends and run their health checks (store, limiters, breaker, ...)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=PING_TIMEOUT,
        metavar="SECONDS",
        help=f"longest wait for one backend's ping (default {PING_TIMEOUT:g})",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = load_plugins()
    try:
        config = load_config(args.config, registry)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    errors = asyncio.run(check_buildable(config, registry))
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        return 2
    parts = [
        f"store={config.store.backend}" if config.store else None,
        f"limiters={len(config.limiters)}" if config.limiters else None,
        f"breaker={config.breaker.backend}" if config.breaker else None,
        f"model={config.model.backend}" if config.model else None,
    ]
    print(f"{config.source}: ok ({', '.join(p for p in parts if p) or 'nothing configured'})")
    if not args.ping:
        return 0
    if not 0 < args.timeout < float("inf"):
        print(f"error: --timeout must be a positive number of seconds, got {args.timeout}")
        return 2
    failures = asyncio.run(ping_all(config, registry, args.timeout))
    for line in failures:
        print(line, file=sys.stderr)
    return 1 if failures else 0


async def ping_all(config: SpectraConfig, registry: PluginRegistry, limit: float) -> list[str]:
    """Build each backend, await its ``ping()`` if it has one, close it; one line per
    backend that failed (printing the reached ones on stdout)."""
    failures = []
    for part in _parts(config):
        problem = await _ping(part, registry, config.source, limit)
        if problem is None or problem == _NO_CHECK:
            print(f"{config.source}: {part.path}: {part.backend}: {problem or 'ok'}")
        else:
            failures.append(f"{config.source}: {part.path}: {part.backend}: {problem}")
    return failures


async def _ping(
    part: BackendConfig, registry: PluginRegistry, source: str, limit: float
) -> str | None:
    try:
        built = build_backend(part, registry, source)
    except ConfigError as exc:
        return "; ".join(exc.errors)
    problem = None
    try:
        ping = getattr(built, "ping", None)
        if ping is None:
            problem = _NO_CHECK
        else:
            async with asyncio.timeout(limit):
                await ping()
    except TimeoutError:
        problem = f"no answer within {limit:g}s"
    except Exception as exc:
        problem = _one_line(f"{type(exc).__name__}: {exc}")
    aclose = getattr(built, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception as exc:  # a backend that cannot even close is not healthy
            if problem in (None, _NO_CHECK):
                problem = _one_line(f"closing failed: {type(exc).__name__}: {exc}")
    return problem


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parts(config: SpectraConfig) -> list[BackendConfig]:
    parts = [config.store, *config.limiters, config.breaker, config.transport, *config.health]
    return [p for p in parts if p is not None]
