"""Plugin discovery and the backend registry.

Plugins are found through the ``spectra`` entry-point group. One broken plugin never
takes the others down: it is recorded with its distribution and error, and asking for
one of its backends raises a :class:`~spectra_core.PluginError` that says so.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from types import ModuleType
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_BACKENDS",
    "Backend",
    "BackendKind",
    "PluginInfo",
    "PluginRegistry",
    "PluginSource",
    "closest",
    "load_plugins",
]

ENTRY_POINT_GROUP = "spectra"
DISABLE_ENV = "SPECTRA_DISABLE_PLUGINS"
#: Name of the plugin holding the backends that ship with spectra-core.
BUILTIN = "builtin"


def _version() -> str:
    from . import __version__

    return __version__


class BackendKind(StrEnum):
    """The kinds of backend, each with its registration hook."""

    SESSION_STORE = "session_store"
    RATE_LIMITER = "rate_limiter"
    CIRCUIT_BREAKER = "circuit_breaker"
    TRANSPORT = "transport"
    HEALTH_CHECK = "health_check"
    MODEL_PROVIDER = "model_provider"
    EVENT_LOG = "event_log"
    JOB_QUEUE = "job_queue"
    AUTHENTICATOR = "authenticator"

    @property
    def hook_name(self) -> str:
        return _HOOKS[self]

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


_HOOKS = {
    BackendKind.SESSION_STORE: "spectra_register_session_stores",
    BackendKind.RATE_LIMITER: "spectra_register_rate_limiters",
    BackendKind.CIRCUIT_BREAKER: "spectra_register_circuit_breakers",
    BackendKind.TRANSPORT: "spectra_register_transports",
    BackendKind.HEALTH_CHECK: "spectra_register_health_checks",
    BackendKind.MODEL_PROVIDER: "spectra_register_model_providers",
    BackendKind.EVENT_LOG: "spectra_register_event_logs",
    BackendKind.JOB_QUEUE: "spectra_register_job_queues",
    BackendKind.AUTHENTICATOR: "spectra_register_authenticators",
}

#: The hook through which plugins add sub-commands to the ``spectra`` command.
COMMANDS_HOOK = "spectra_register_commands"

#: Backends of our own distributions, so a missing one gets an install hint.
KNOWN_BACKENDS: Mapping[BackendKind, Mapping[str, str]] = {
    BackendKind.SESSION_STORE: {
        "memory": "spectra-memory",
        "fs": "spectra-fs",
        "sqlite": "spectra-sqlite",
        "redis": "spectra-redis",
    },
    BackendKind.RATE_LIMITER: {"memory": "spectra-memory", "redis": "spectra-redis"},
    BackendKind.CIRCUIT_BREAKER: {"memory": "spectra-memory", "redis": "spectra-redis"},
    BackendKind.TRANSPORT: {"sse": "spectra-sse", "ws": "spectra-ws"},
    BackendKind.HEALTH_CHECK: {"redis": "spectra-redis"},
    BackendKind.MODEL_PROVIDER: {"openai": "spectra-openai"},
    BackendKind.EVENT_LOG: {"memory": "spectra-memory", "redis": "spectra-redis"},
    BackendKind.JOB_QUEUE: {"memory": "spectra-memory", "redis": "spectra-redis"},
}


@attrs.frozen
class NoOptions:
    """Options class of a backend that takes none."""


@attrs.frozen
class Backend:
    """A registered backend: ``factory(options)`` builds it from an ``options`` instance."""

    kind: BackendKind
    name: str
    factory: Callable[[Any], Any]
    options: type[Any]
    plugin: str
    distribution: str
    description: str = ""

    def create(self, options: Any = None) -> Any:
        return self.factory(self.options() if options is None else options)


@attrs.frozen
class PluginSource:
    """Something to load as a plugin: an entry point, or an object given in-process."""

    name: str
    load: Callable[[], object]
    distribution: str
    version: str = ""

    @classmethod
    def from_entry_point(cls, ep: importlib.metadata.EntryPoint) -> PluginSource:
        dist = ep.dist
        return cls(
            name=ep.name,
            load=ep.load,
            distribution=dist.name if dist is not None else ep.value.split(".")[0],
            version=dist.version if dist is not None else "",
        )

    @classmethod
    def of(cls, name: str, plugin: object, distribution: str | None = None) -> PluginSource:
        return cls(name=name, load=lambda: plugin, distribution=distribution or name)


@attrs.define
class PluginInfo:
    """What ``spectra plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    status: str = "ok"  # ok | broken | disabled
    error: str | None = None
    backends: dict[str, list[str]] = attrs.field(factory=dict)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (for "did you mean"), if any is close."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _disabled_from_env() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {p.strip() for p in raw.split(",") if p.strip()}


class PluginRegistry:
    """The plugins of one application and the backends they registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("spectra")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._backends: dict[BackendKind, dict[str, Backend]] = {k: {} for k in BackendKind}
        self._duplicates: dict[tuple[BackendKind, str], list[str]] = {}

    # --- loading ----------------------------------------------------------------------

    def add(self, source: PluginSource) -> PluginInfo:
        """Load one plugin; any failure is recorded on its :class:`PluginInfo`."""
        info = PluginInfo(source.name, source.distribution, source.version)
        self.plugins.append(info)
        try:
            plugin = source.load()
            self._check_names(plugin)
            self.pm.register(plugin, name=source.name)
        except Exception as exc:
            return self._broken(info, exc)
        try:
            self._check_pending(source.name)
            for kind in BackendKind:
                self._call_register_hook(kind, plugin, info)
        except Exception as exc:
            self.pm.unregister(name=source.name)
            self._forget(info)
            return self._broken(info, exc)
        return info

    def disable(self, source: PluginSource) -> None:
        self.plugins.append(
            PluginInfo(source.name, source.distribution, source.version, status="disabled")
        )

    def _broken(self, info: PluginInfo, exc: BaseException) -> PluginInfo:
        info.status = "broken"
        info.error = "".join(traceback.format_exception_only(exc)).strip()
        info.backends = {}
        return info

    def _check_names(self, plugin: object) -> None:
        """Catch a hook function whose name is not a hook (a misspelled hookimpl)."""
        known = {*_HOOKS.values(), COMMANDS_HOOK}
        for attr in dir(plugin):
            if attr.startswith("spectra_") and attr not in known:
                value = getattr(plugin, attr, None)
                if inspect.isfunction(value) or inspect.ismethod(value):
                    guess = closest(attr, known)
                    hint = f"; did you mean {guess!r}?" if guess else ""
                    raise PluginError(f"{attr!r} is not a spectra hook{hint}")

    def _check_pending(self, name: str) -> None:
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from None

    def _call_register_hook(self, kind: BackendKind, plugin: object, info: PluginInfo) -> None:
        fn = getattr(plugin, kind.hook_name, None)
        if fn is None:
            return

        def register(
            name: str,
            factory: Callable[[Any], Any],
            options: type[Any] | None = None,
            *,
            description: str = "",
        ) -> None:
            self._register(
                Backend(
                    kind=kind,
                    name=name,
                    factory=factory,
                    options=options or NoOptions,
                    plugin=info.name,
                    distribution=info.distribution,
                    description=description or (inspect.getdoc(factory) or "").split("\n")[0],
                ),
                info,
            )

        fn(register=register)

    def _register(self, backend: Backend, info: PluginInfo) -> None:
        if not backend.name or not isinstance(backend.name, str):
            raise PluginError(f"{info.distribution} registered a {backend.kind.label} without name")
        if not attrs.has(backend.options):
            raise PluginError(
                f"{info.distribution}: options of {backend.kind.label} {backend.name!r} "
                "must be an attrs class"
            )
        table = self._backends[backend.kind]
        existing = table.get(backend.name)
        if existing is not None:
            dists = self._duplicates.setdefault(
                (backend.kind, backend.name), [existing.distribution]
            )
            dists.append(backend.distribution)
        else:
            table[backend.name] = backend
        info.backends.setdefault(backend.kind.value, []).append(backend.name)

    def _forget(self, info: PluginInfo) -> None:
        for table in self._backends.values():
            for name in [n for n, b in table.items() if b.plugin == info.name]:
                del table[name]

    # --- lookup -----------------------------------------------------------------------

    @property
    def errors(self) -> list[str]:
        """Every loading problem: broken plugins and backend names registered twice."""
        out = [
            f"plugin {p.name!r} ({p.distribution} {p.version}".rstrip()
            + f") failed to load: {p.error}"
            for p in self.plugins
            if p.status == "broken"
        ]
        for (kind, name), dists in self._duplicates.items():
            out.append(
                f"{kind.label} backend {name!r} is registered by more than one distribution: "
                + " and ".join(dists)
            )
        return out

    def names(self, kind: BackendKind) -> list[str]:
        """The usable backend names of one kind."""
        return sorted(self._backends[kind])

    def backends(self, kind: BackendKind) -> list[Backend]:
        return [self._backends[kind][n] for n in self.names(kind)]

    def get(self, kind: BackendKind, name: str) -> Backend:
        """The backend, or a :class:`PluginError` saying why it cannot be used and what to do."""
        dup = self._duplicates.get((kind, name))
        if dup:
            raise PluginError(
                f"{kind.label} backend {name!r} is registered by more than one distribution "
                f"({' and '.join(dup)}); uninstall one or block it with {DISABLE_ENV}"
            )
        backend = self._backends[kind].get(name)
        if backend is not None:
            return backend
        raise PluginError(self.unknown_message(kind, name))

    def unknown_message(self, kind: BackendKind, name: str) -> str:
        dist = KNOWN_BACKENDS.get(kind, {}).get(name)
        for p in self.plugins:
            if p.status != "ok" and (p.name == name or p.distribution == dist):
                why = f"failed to load: {p.error}" if p.status == "broken" else "is disabled"
                return (
                    f"{kind.label} backend {name!r} is unavailable: plugin {p.name!r} "
                    f"({p.distribution}) {why}"
                )
        if dist is not None:
            return (
                f"{kind.label} backend {name!r} is provided by {dist}, which is not installed; "
                f"run: pip install {dist}"
            )
        msg = f"unknown {kind.label} backend {name!r}"
        guess = closest(name, self.names(kind))
        if guess is not None:
            return f"{msg}; did you mean {guess!r}?"
        available = ", ".join(repr(n) for n in self.names(kind)) or "none installed"
        return f"{msg} (available: {available})"

    def create(self, kind: BackendKind, name: str, options: Any = None) -> Any:
        """Build a backend from an options instance (defaults when ``None``)."""
        return self.get(kind, name).create(options)


def entry_point_sources() -> list[PluginSource]:
    """Every installed plugin of the ``spectra`` entry-point group."""
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    out = []
    for ep in eps:
        src = PluginSource.from_entry_point(ep)
        if (src.name, src.distribution) not in seen:
            seen.add((src.name, src.distribution))
            out.append(src)
    return out


def load_plugins(
    sources: Iterable[PluginSource] | None = None,
    *,
    extra: Iterable[PluginSource] = (),
    disabled: Iterable[str] | None = None,
) -> PluginRegistry:
    """A fresh registry with the installed plugins (or ``sources``) and ``extra`` loaded.

    Plugins named in ``disabled`` (default: ``$SPECTRA_DISABLE_PLUGINS``, comma-separated
    plugin or distribution names) are listed as disabled and not imported.
    """
    blocked = set(_disabled_from_env() if disabled is None else disabled)
    registry = PluginRegistry()
    from .agent import _builtin_plugin

    registry.add(PluginSource(BUILTIN, lambda: _builtin_plugin, "spectra-core", _version()))
    for source in [*(entry_point_sources() if sources is None else sources), *extra]:
        if source.name in blocked or source.distribution in blocked:
            registry.disable(source)
        else:
            registry.add(source)
    return registry


def module_source(module: ModuleType, distribution: str | None = None) -> PluginSource:
    """A plugin source for an already imported module (handy in tests)."""
    return PluginSource.of(module.__name__, module, distribution)
