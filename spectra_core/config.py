"""Assembling an application from a TOML file.

Each part names its backend and gives that backend's options beside it::

    [store]
    backend = "sqlite"
    path = "sessions.db"

Options are structured by cattrs into the attrs ``Options`` class the backend registered.
Every problem becomes one line of a :class:`~spectra_core.ConfigError`, naming the file
and the key path (``spectra.toml: $.store.ttl: expected a duration like "30s"``),
suggesting the closest name for a misspelled backend or key, and saying what to install
for a known backend whose distribution is missing. ``${VAR}`` and ``${VAR:-default}``
interpolate the environment (``$$`` is a literal ``$``).

This module assembles the parts (``build_*``); reading and validating the file is in
``_config_parse``, structuring option tables in ``_config_options``. Import every name
from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._closing import aclose_all
from ._config_options import _message, structure_options
from ._config_options import _structure as _structure  # for the [agents] tables
from ._config_parse import _SECTIONS as _SECTIONS
from ._config_parse import MAX_DEPTH as MAX_DEPTH  # documented as spectra_core.config.MAX_DEPTH
from ._config_parse import (
    BackendConfig,
    EngineSettings,
    SpectraConfig,
    interpolate,
    load_config,
    parse_config,
)
from .errors import ConfigError, SpectraError
from .plugins import BackendKind, PluginRegistry

if TYPE_CHECKING:
    from .agent.provider import ModelProvider
    from .breaker import CircuitBreaker
    from .engine import SessionEngine
    from .rate_limit import CompositeRateLimiter
    from .store import SessionStore

__all__ = [
    "BackendConfig",
    "EngineSettings",
    "SpectraConfig",
    "build_backend",
    "build_breaker",
    "build_engine",
    "build_queue",
    "build_rate_limiter",
    "build_store",
    "interpolate",
    "load_config",
    "parse_config",
    "provider_resolver",
    "structure_options",
]


def build_store(config: SpectraConfig, registry: PluginRegistry) -> SessionStore:
    """The session store the config names; ConfigError if it has no ``[store]``."""
    from .store import SessionStore

    if config.store is None:
        raise ConfigError(f'{config.source}: no [store] section: add one, e.g. backend = "memory"')
    store: SessionStore = _expect(
        _create(config.store, registry, config.source),
        SessionStore,
        "session store",
        config.store,
        config.source,
    )
    return store


def build_rate_limiter(
    config: SpectraConfig, registry: PluginRegistry
) -> CompositeRateLimiter | None:
    """A CompositeRateLimiter over the ``[[limiter]]`` entries, or None without any."""
    from .rate_limit import CompositeRateLimiter

    if not config.limiters:
        return None
    chain = [
        {"limiter": _create(part, registry, config.source), "key": part.key}
        for part in config.limiters
    ]
    try:
        return CompositeRateLimiter(chain)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: $.limiter: {exc}") from None


def build_breaker(config: SpectraConfig, registry: PluginRegistry) -> CircuitBreaker | None:
    """The circuit breaker of ``[breaker]``, or None without one."""
    from .breaker import CircuitBreaker

    if config.breaker is None:
        return None
    breaker: CircuitBreaker = _expect(
        _create(config.breaker, registry, config.source),
        CircuitBreaker,
        "circuit breaker",
        config.breaker,
        config.source,
    )
    return breaker


def provider_resolver(registry: PluginRegistry) -> Callable[[str], ModelProvider]:
    """Builds a model provider by name from the registry, with its default options (what
    the engine uses for a provider named by a model but not configured)."""

    def resolve(name: str) -> ModelProvider:
        from .agent.provider import ModelProvider

        built = registry.create(BackendKind.MODEL_PROVIDER, name)
        provider: ModelProvider = _expect(built, ModelProvider, "model provider", None, name)
        return provider

    return resolve


def build_queue(config: SpectraConfig, registry: PluginRegistry) -> Any:
    """The job queue of ``[queue]``; ConfigError if there is none."""
    if config.queue is None:
        raise ConfigError(f'{config.source}: no [queue] section: add one, e.g. backend = "memory"')
    return _create(config.queue, registry, config.source)


def build_engine(
    config: SpectraConfig, registry: PluginRegistry, **overrides: Any
) -> SessionEngine:
    """A SessionEngine assembled from the whole config (not started).

    ``overrides`` are passed to :class:`~spectra_core.engine.SessionEngine` (e.g. a
    ``clock``, or ``providers`` to use instead of the configured one). Providers named
    by a model but not configured are built from ``registry`` (:func:`provider_resolver`).
    """
    from .agent.provider import ModelProvider
    from .engine import SessionEngine
    from .event_log import build_event_log
    from .health import build_health_probe
    from .manager import SessionManager
    from .models import ModelRef

    settings = config.engine
    kwargs: dict[str, Any] = {
        "rate_limiter": build_rate_limiter(config, registry),
        "circuit_breaker": build_breaker(config, registry),
        "max_concurrent_sessions": settings.max_concurrent_sessions,
        "session_timeout_ms": int(settings.session_timeout * 1000),
        "engine_id": settings.engine_id,
        "busy": settings.busy,
        "capacity_wait_ms": int(settings.capacity_wait * 1000),
        "max_input_chars": settings.max_input_chars,
        "resolve_provider": provider_resolver(registry),
    }
    if config.model is not None:
        name = config.model.backend
        provider = _create(config.model, registry, config.source)
        provider = _expect(provider, ModelProvider, "model provider", config.model, config.source)
        model_id = getattr(config.model.options, "model", None) or name
        kwargs["provider"] = provider
        kwargs["providers"] = {name: provider}
        kwargs["default_model"] = ModelRef(model_id, provider=name)
        kwargs["close_providers"] = True
    kwargs.update(overrides)
    store = build_store(config, registry)
    manager = SessionManager(store, clock=kwargs.get("clock"))
    event_log = kwargs.setdefault("event_log", build_event_log(config, registry))
    kwargs.setdefault(
        "health_probe",
        build_health_probe(
            config,
            registry,
            clock=kwargs.get("clock"),
            pings={"store": store} | ({"event_log": event_log} if event_log else {}),
        ),
    )
    kwargs.setdefault("close_backends", True)
    return SessionEngine(manager, **kwargs)


def _expect(built: Any, protocol: Any, what: str, part: BackendConfig | None, source: str) -> Any:
    """``built`` if it has the methods of ``protocol``; else a ConfigError saying so."""
    if isinstance(built, protocol):
        return built
    where = f"{source}: {part.path}" if part is not None else source
    raise ConfigError(f"{where}: the backend built a {type(built).__name__}, not a {what}")


def build_backend(part: BackendConfig, registry: PluginRegistry, source: str) -> Any:
    """Build one configured backend; ConfigError naming ``source`` and the key path."""
    return _create(part, registry, source)


def _create(part: BackendConfig, registry: PluginRegistry, source: str) -> Any:
    try:
        return part.create(registry)
    except ConfigError as exc:
        raise ConfigError([f"{source}: {part.path}: {line}" for line in exc.errors]) from None
    except Exception as exc:  # whatever the factory refuses, reported at its key
        message = _message(exc) if isinstance(exc, ValueError | TypeError | SpectraError) else ""
        message = message or f"{type(exc).__name__}: {exc}"
        raise ConfigError(f"{source}: {_key_named(part, message)}: {message}") from None


def _key_named(part: BackendConfig, message: str) -> str:
    """``part``'s key path, down to the option the message names if it names only one
    (as itself, or in milliseconds: ``window_ms`` names ``window``)."""
    cls = type(part.options)
    names = [a.name for a in attrs.fields(cls)] if attrs.has(cls) else []
    named = [n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(_ms)?(?!\w)", message)]
    return f"{part.path}.{named[0]}" if len(named) == 1 else part.path


async def check_buildable(config: SpectraConfig, registry: PluginRegistry) -> list[str]:
    """Build every configured backend once, then the engine if there is a ``[store]``
    (then close them all), and list what fails: what ``check`` accepts,
    :func:`build_engine` builds."""
    errors: list[str] = []
    for part in _parts(config):
        try:
            built = _create(part, registry, config.source)
        except ConfigError as exc:
            errors.extend(exc.errors)
            continue
        await aclose_all([built])
    if errors or config.store is None:  # without a store, a config gives parts only
        return errors
    try:
        engine = build_engine(config, registry)
    except ConfigError as exc:
        return exc.errors
    except Exception as exc:
        return [f"{config.source}: $.engine: {type(exc).__name__}: {exc}"]
    await _close_engine(engine)
    return []


def _parts(config: SpectraConfig) -> list[BackendConfig]:
    parts = [
        config.store,
        *config.limiters,
        config.breaker,
        config.model,
        config.transport,
        *config.health,
        config.event_log,
        config.queue,
    ]
    return [p for p in parts if p is not None]


async def _close_engine(engine: Any) -> None:
    """Release what an engine that never started holds (no log lines, no drain)."""
    await aclose_all(
        [
            engine.default_provider,
            *engine.providers.values(),
            engine.session_manager.store,
            engine.rate_limiter,
            engine.circuit_breaker,
            engine.event_log,
        ]
    )
