"""Reading a config: the ``[engine]`` table, one table per backend, validation.

:func:`parse_config` checks a parsed TOML document against the backends the plugins
registered and gives a :class:`SpectraConfig`; :mod:`spectra_core.config` builds the
parts from it. Import these names from :mod:`spectra_core.config`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._config_options import _structure
from .durations import Duration
from .errors import ConfigError, PluginError
from .plugins import BackendKind, PluginRegistry, closest, load_plugins
from .rate_limit import DIMENSIONS

__all__ = [
    "MAX_DEPTH",
    "BackendConfig",
    "EngineSettings",
    "SpectraConfig",
    "interpolate",
    "load_config",
    "parse_config",
]


def _at_least_1ms(_: Any, attribute: attrs.Attribute[Duration], value: Duration) -> None:
    if value < 0.001:  # the engine counts in whole milliseconds
        raise ValueError(f"{attribute.name} must be at least 1ms, got {value!r} seconds")


@attrs.frozen
class EngineSettings:
    """The ``[engine]`` table."""

    engine_id: str = "local"
    max_concurrent_sessions: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    session_timeout: Duration = attrs.field(default=Duration(120.0), validator=_at_least_1ms)
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
    event_log: BackendConfig | None = None
    queue: BackendConfig | None = None
    #: Sections owned by plugins (``[server]`` of spectra-server), interpolated but not
    #: checked here: the plugin that reads one structures it (:func:`structure_options`).
    plugin_sections: Mapping[str, Any] = attrs.field(factory=dict)


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
    "event_log": (BackendKind.EVENT_LOG, "backend", False),
    "queue": (BackendKind.JOB_QUEUE, "backend", False),
}
#: Sections read by other modules (checked here, built there): ``[agents.<name>]``.
_OTHER_SECTIONS = ("agents", "server")
#: Sections a plugin reads and checks (kept raw in ``SpectraConfig.plugin_sections``).
_PLUGIN_SECTIONS = ("server",)
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


#: The deepest nesting of tables and arrays a config may have.
MAX_DEPTH = 32


def _too_deep(data: Any) -> str | None:
    """The key path of the first value nested deeper than MAX_DEPTH, or None (iterative:
    a document deeper than Python's recursion limit is refused, not a RecursionError)."""
    stack: list[tuple[Any, str, int]] = [(data, "$", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path
        if isinstance(value, Mapping):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


def parse_config(
    data: Mapping[str, Any],
    source: str = "<config>",
    registry: PluginRegistry | None = None,
    env: Mapping[str, str] | None = None,
) -> SpectraConfig:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    registry = registry if registry is not None else load_plugins()
    too_deep = _too_deep(data)
    if too_deep is not None:
        raise ConfigError(
            f"{source}: {too_deep}: nested more than {MAX_DEPTH} levels deep; "
            "a spectra config is a few tables of plain values"
        )
    values, errors = interpolate(dict(data), "$", env)
    parts: dict[str, Any] = {}
    for section, value in values.items():
        if section == "agents":
            from .workers._agents_config import check_agents

            errors += check_agents(value)[1]
            continue
        if section in _PLUGIN_SECTIONS:
            parts.setdefault("plugin_sections", {})[section] = value
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
    except RecursionError:
        raise ConfigError(
            f"{p}: $: nested more than {MAX_DEPTH} levels deep; "
            "a spectra config is a few tables of plain values"
        ) from None
    return parse_config(data, str(p), registry, env)
