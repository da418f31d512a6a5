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
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception

from .durations import Duration, parse_duration
from .errors import ConfigError, PluginError
from .plugins import BackendKind, PluginRegistry, closest, load_plugins
from .rate_limit import DIMENSIONS

__all__ = [
    "BackendConfig",
    "EngineSettings",
    "SpectraConfig",
    "build_breaker",
    "build_engine",
    "build_queue",
    "build_rate_limiter",
    "build_store",
    "interpolate",
    "load_config",
    "parse_config",
]

T = TypeVar("T")


@attrs.frozen
class EngineSettings:
    """The ``[engine]`` table."""

    engine_id: str = "local"
    max_concurrent_sessions: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    session_timeout: Duration = attrs.field(default=Duration(120.0))
    busy: str = attrs.field(default="reject", validator=attrs.validators.in_(("reject", "wait")))
    capacity_wait: Duration = attrs.field(default=Duration(0.0))
    max_input_chars: int = attrs.field(default=1_000_000, validator=attrs.validators.ge(1))


@attrs.frozen
class BackendConfig:
    """One configured backend: its kind, name, structured options and where it was set."""

    kind: BackendKind
    backend: str
    options: Any
    path: str
    key: str | None = None

    def create(self, registry: PluginRegistry) -> Any:
        """Build the backend with its options."""
        return registry.create(self.kind, self.backend, self.options)


@attrs.frozen
class SpectraConfig:
    """A validated configuration. ``source`` is the file it came from."""

    source: str
    engine: EngineSettings = attrs.field(factory=EngineSettings)
    store: BackendConfig | None = None
    limiters: tuple[BackendConfig, ...] = ()
    breaker: BackendConfig | None = None
    model: BackendConfig | None = None
    transport: BackendConfig | None = None
    health: tuple[BackendConfig, ...] = ()
    queue: BackendConfig | None = None


# --- value conversion -----------------------------------------------------------------


def _strict(expected: type[Any], label: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if not ok:
            raise TypeError(f"expected {label}, got {value!r} ({type(value).__name__})")
        return value

    return structure


def _float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r} ({type(value).__name__})")
    return float(value)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook(Duration, lambda v, _: parse_duration(v))
    conv.register_structure_hook(Path, lambda v, _: Path(_strict(str, "a path")(v, None)))
    return conv


options_converter = _make_converter()


def _format(exc: BaseException, typ: type[Any] | None) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        parts = []
        for key in sorted(exc.extra_fields):
            guess = closest(key, known)
            hint = f"; did you mean {guess!r}?" if guess else ""
            parts.append(f"unknown key {key!r}{hint}")
        if known:
            parts.append(f"(valid keys: {', '.join(known)})")
        return " ".join(parts)
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    return format_exception(exc, typ)


def _structure(value: Any, cls: type[T], path: str) -> tuple[T | None, list[str]]:
    """Structure ``value`` into ``cls``; errors as ``"$.path: message"`` lines."""
    try:
        return options_converter.structure(value, cls), []
    except (cattrs.ClassValidationError, cattrs.IterableValidationError) as exc:
        lines = cattrs.transform_error(exc, path=path, format_exception=_format)
        return None, [_path_first(line) for line in lines]
    except (ValueError, TypeError) as exc:
        return None, [f"{path}: {exc}"]


def _path_first(line: str) -> str:
    """cattrs says ``"message @ $.path"``; we say ``"$.path: message"``."""
    message, sep, path = line.rpartition(" @ ")
    return f"{path}: {message}" if sep else line


# --- environment interpolation --------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(
    value: Any, path: str = "$", env: Mapping[str, str] | None = None
) -> tuple[Any, list[str]]:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``value``."""
    environ = os.environ if env is None else env
    errors: list[str] = []

    def sub(text: str, where: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            if name in environ and (environ[name] or default is None):
                return environ[name]
            if default is not None:
                return default
            errors.append(
                f"{where}: environment variable {name} is not set "
                f"(set it, or give a default: ${{{name}:-...}})"
            )
            return m.group(0)

        return _VAR.sub(repl, text)

    def walk(v: Any, where: str) -> Any:
        if isinstance(v, str):
            return sub(v, where)
        if isinstance(v, dict):
            return {k: walk(x, f"{where}.{k}") for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, f"{where}[{i}]") for i, x in enumerate(v)]
        return v

    return walk(value, path), errors


# --- sections -------------------------------------------------------------------------

# section name -> (kind, key naming the backend, whether it is an array of tables)
_SECTIONS: dict[str, tuple[BackendKind | None, str, bool]] = {
    "engine": (None, "", False),
    "store": (BackendKind.SESSION_STORE, "backend", False),
    "limiter": (BackendKind.RATE_LIMITER, "backend", True),
    "breaker": (BackendKind.CIRCUIT_BREAKER, "backend", False),
    "model": (BackendKind.MODEL_PROVIDER, "provider", False),
    "transport": (BackendKind.TRANSPORT, "backend", False),
    "health": (BackendKind.HEALTH_CHECK, "backend", True),
    "queue": (BackendKind.JOB_QUEUE, "backend", False),
}
#: Sections read by other modules (checked here, built there): ``[agents.<name>]``.
_OTHER_SECTIONS = ("agents",)
#: Keys of a section that belong to the assembly, not to the backend's options.
_ASSEMBLY_KEYS: dict[BackendKind, tuple[str, ...]] = {BackendKind.RATE_LIMITER: ("key",)}


def _backend_section(
    table: Any, kind: BackendKind, name_key: str, path: str, registry: PluginRegistry
) -> tuple[BackendConfig | None, list[str]]:
    if not isinstance(table, dict):
        return None, [f"{path}: expected a table, got {type(table).__name__}"]
    name = table.get(name_key)
    if name is None:
        available = ", ".join(repr(n) for n in registry.names(kind)) or "none installed"
        return None, [
            f"{path}: missing key {name_key!r} naming the {kind.label} backend "
            f"(available: {available})"
        ]
    if not isinstance(name, str):
        return None, [f"{path}.{name_key}: expected a backend name, got {name!r}"]
    try:
        backend = registry.get(kind, name)
    except PluginError as exc:
        return None, [f"{path}.{name_key}: {exc}"]
    extra = _ASSEMBLY_KEYS.get(kind, ())
    key = table.get("key")
    errors: list[str] = []
    if "key" in extra:
        if key is None:
            errors.append(
                f"{path}: missing key 'key' naming the request dimension this limiter "
                "counts (tenant, user, provider or session)"
            )
        elif not isinstance(key, str):
            errors.append(f"{path}.key: expected a string, got {key!r}")
        elif key not in DIMENSIONS:
            guess = closest(key, DIMENSIONS)
            hint = f"did you mean {guess!r}? " if guess else ""
            errors.append(
                f"{path}.key: unknown request dimension {key!r}; {hint}"
                f"(valid: {', '.join(DIMENSIONS)})"
            )
    raw = {k: v for k, v in table.items() if k != name_key and k not in extra}
    options, errs = _structure(raw, backend.options, path)
    errors += errs
    if errors or options is None:
        return None, errors
    return BackendConfig(kind, name, options, path, key if "key" in extra else None), []


def parse_config(
    data: Mapping[str, Any],
    source: str = "<config>",
    registry: PluginRegistry | None = None,
    env: Mapping[str, str] | None = None,
) -> SpectraConfig:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    registry = registry if registry is not None else load_plugins()
    values, errors = interpolate(dict(data), "$", env)
    parts: dict[str, Any] = {}
    for section, value in values.items():
        if section == "agents":
            from .workers._agents_config import check_agents

            errors += check_agents(value)[1]
            continue
        spec = _SECTIONS.get(section)
        if spec is None:
            guess = closest(section, [*_SECTIONS, *_OTHER_SECTIONS])
            hint = f"; did you mean [{guess}]?" if guess else ""
            valid = ", ".join([*_SECTIONS, *_OTHER_SECTIONS])
            errors.append(f"$: unknown section [{section}]{hint} (valid: {valid})")
            continue
        kind, name_key, is_array = spec
        path = f"$.{section}"
        if kind is None:
            engine, errs = _structure(value, EngineSettings, path)
            errors += errs
            if engine is not None:
                parts["engine"] = engine
            continue
        if is_array:
            tables = value if isinstance(value, list) else [value]
            built = []
            for i, table in enumerate(tables):
                cfg, errs = _backend_section(table, kind, name_key, f"{path}[{i}]", registry)
                errors += errs
                if cfg is not None:
                    built.append(cfg)
            parts[section if section != "limiter" else "limiters"] = tuple(built)
        else:
            cfg, errs = _backend_section(value, kind, name_key, path, registry)
            errors += errs
            parts[section] = cfg
    if errors:
        raise ConfigError([f"{source}: {e}" for e in errors])
    return SpectraConfig(source=source, **parts)


def load_config(
    path: str | os.PathLike[str],
    registry: PluginRegistry | None = None,
    env: Mapping[str, str] | None = None,
) -> SpectraConfig:
    """Read and validate a TOML config file; raise ConfigError naming file and key paths."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return parse_config(data, str(p), registry, env)


def build_store(config: SpectraConfig, registry: PluginRegistry) -> Any:
    """The session store the config names; ConfigError if it has no ``[store]``."""
    if config.store is None:
        raise ConfigError(f'{config.source}: no [store] section: add one, e.g. backend = "memory"')
    return _create(config.store, registry, config.source)


def build_rate_limiter(config: SpectraConfig, registry: PluginRegistry) -> Any:
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


def build_breaker(config: SpectraConfig, registry: PluginRegistry) -> Any:
    """The circuit breaker of ``[breaker]``, or None without one."""
    return None if config.breaker is None else _create(config.breaker, registry, config.source)


def build_queue(config: SpectraConfig, registry: PluginRegistry) -> Any:
    """The job queue of ``[queue]``; ConfigError if there is none."""
    if config.queue is None:
        raise ConfigError(f'{config.source}: no [queue] section: add one, e.g. backend = "memory"')
    return _create(config.queue, registry, config.source)


def build_engine(config: SpectraConfig, registry: PluginRegistry, **overrides: Any) -> Any:
    """A SessionEngine assembled from the whole config (not started).

    ``overrides`` are passed to :class:`~spectra_core.engine.SessionEngine` (e.g. a
    ``clock``, or ``providers`` to use instead of the configured one).
    """
    from .engine import SessionEngine
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
        "registry": registry,
    }
    if config.model is not None:
        name = config.model.backend
        provider = _create(config.model, registry, config.source)
        model_id = getattr(config.model.options, "model", None) or name
        kwargs["provider"] = provider
        kwargs["providers"] = {name: provider}
        kwargs["default_model"] = ModelRef(model_id, provider=name)
        kwargs["close_providers"] = True
    kwargs.update(overrides)
    store = build_store(config, registry)
    manager = SessionManager(store, clock=kwargs.get("clock"))
    return SessionEngine(manager, **kwargs)


def _create(part: BackendConfig, registry: PluginRegistry, source: str) -> Any:
    try:
        return part.create(registry)
    except ConfigError as exc:
        raise ConfigError([f"{source}: {part.path}: {line}" for line in exc.errors]) from None
    except (ValueError, TypeError, PluginError) as exc:
        raise ConfigError(f"{source}: {part.path}: {exc}") from None


async def check_buildable(config: SpectraConfig, registry: PluginRegistry) -> list[str]:
    """Build every configured backend once (then close it) and list what fails."""
    errors = []
    parts = [
        config.store,
        *config.limiters,
        config.breaker,
        config.model,
        config.transport,
        *config.health,
        config.queue,
    ]
    for part in parts:
        if part is None:
            continue
        try:
            built = _create(part, registry, config.source)
        except ConfigError as exc:
            errors.extend(exc.errors)
            continue
        aclose = getattr(built, "aclose", None)
        if aclose is not None:
            await aclose()
    return errors
