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
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

from ._closing import aclose_all
from .durations import Duration, parse_duration
from .errors import ConfigError, PluginError, SpectraError
from .plugins import BackendKind, PluginRegistry, closest, load_plugins
from .rate_limit import DIMENSIONS

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

T = TypeVar("T")


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
    conv.register_structure_hook_factory(attrs.has, lambda cls: _keyed(conv, cls))
    return conv


def _keyed(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    """cattrs' structuring of an attrs class, except that a converter or validator that
    refuses a value is reported at its key (``$.store.schema``), not at the table, and
    together with the keys that failed to structure."""
    base = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)

    def structure(value: Any, _: Any) -> Any:
        try:
            return base(value, cls)
        except cattrs.ClassValidationError as group:
            refusals = _refusals(conv, cls, value)
            if not refusals:
                raise
            # what cattrs named stays; an error of cls(...) itself becomes the refusals
            kept = [
                e
                for e in group.exceptions
                if _keyed_note(e) is not None or isinstance(e, ForbiddenExtraKeysError)
            ]
            raise cattrs.ClassValidationError(
                f"While structuring {cls.__name__}", _in_field_order(cls, kept + refusals), cls
            ) from None
        except (ValueError, TypeError):  # the same, without detailed validation
            refusals = _refusals(conv, cls, value)
            if not refusals:
                raise
            raise cattrs.ClassValidationError(
                f"While structuring {cls.__name__}", refusals, cls
            ) from None

    return structure


def _keyed_note(exc: BaseException) -> AttributeValidationNote | None:
    notes = getattr(exc, "__notes__", ())
    return next((n for n in notes if isinstance(n, AttributeValidationNote)), None)


def _in_field_order(cls: type[Any], errors: list[Exception]) -> list[Exception]:
    order = {f.alias or f.name: i for i, f in enumerate(attrs.fields(cls))}

    def rank(exc: Exception) -> int:
        note = _keyed_note(exc)
        return order.get(str(note.name), len(order)) if note is not None else len(order)

    return sorted(errors, key=rank)


def _refusals(conv: cattrs.Converter, cls: type[Any], value: Any) -> list[Exception]:
    """The values given for ``cls`` that structure but that their converter or validator
    refuses, each noted at its key."""
    if not isinstance(value, Mapping):
        return []
    refusals: list[Exception] = []
    for field in attrs.fields(attrs.resolve_types(cls)):
        key = field.alias or field.name
        if not field.init or key not in value:
            continue
        try:
            v = conv.structure(value[key], field.type)
        except Exception:
            continue  # reported by cattrs at its key
        try:
            if field.converter is not None:
                v = field.converter(v)
            if field.validator is not None:
                field.validator(None, field, v)
        except Exception as refused:
            refused.__notes__ = [
                AttributeValidationNote(f"Structuring class {cls.__qualname__} @ {key}", key, v)
            ]
            refusals.append(refused)
    return refusals


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
        return _message(exc)
    return format_exception(exc, typ)


def _message(exc: BaseException) -> str:
    """The text of ``exc``: attrs' validators raise ``ValueError(text, attribute, ...)``."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _structure(value: Any, cls: type[T], path: str) -> tuple[T | None, list[str]]:
    """Structure ``value`` into ``cls``; errors as ``"$.path: message"`` lines."""
    try:
        return options_converter.structure(value, cls), []
    except (cattrs.ClassValidationError, cattrs.IterableValidationError) as exc:
        lines = cattrs.transform_error(exc, path=path, format_exception=_format)
        return None, [_path_first(line) for line in lines]
    except (ValueError, TypeError) as exc:
        return None, [f"{path}: {exc}"]


def structure_options(value: Any, cls: type[T], path: str) -> tuple[T | None, list[str]]:
    """Structure a config table into the attrs class ``cls`` as backends' options are:
    the object, or None and one ``"$.path: message"`` line per problem."""
    return _structure(value, cls, path)


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
