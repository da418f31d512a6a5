"""Config assembly: every error names the file and key path and says what to do."""

from __future__ import annotations

import types
from pathlib import Path

import attrs
import pytest

from spectra_core import BackendKind, ConfigError, hookimpl
from spectra_core.config import EngineSettings, interpolate, load_config
from spectra_core.durations import Duration
from spectra_core.plugins import PluginRegistry, PluginSource, load_plugins


@attrs.frozen
class StoreOptions:
    path: str
    ttl: Duration = attrs.field(default=Duration(60.0))
    pool_size: int = 4
    verbose: bool = False


@attrs.frozen
class LimiterOptions:
    requests_per_window: int
    window: Duration


@pytest.fixture
def registry() -> PluginRegistry:
    mod = types.ModuleType("acme")

    @hookimpl
    def spectra_register_session_stores(register):  # type: ignore[no-untyped-def]
        register("acme", lambda o: ("acme-store", o), StoreOptions)

    @hookimpl
    def spectra_register_rate_limiters(register):  # type: ignore[no-untyped-def]
        register("window", lambda o: ("limiter", o), LimiterOptions)

    mod.spectra_register_session_stores = spectra_register_session_stores  # type: ignore[attr-defined]
    mod.spectra_register_rate_limiters = spectra_register_rate_limiters  # type: ignore[attr-defined]
    return load_plugins([PluginSource.of("acme", mod, "acme-spectra")], disabled=[])


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spectra.toml"
    p.write_text(text)
    return p


def errors_of(path: Path, registry: PluginRegistry, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, registry, env or {})
    return info.value.errors


def test_valid_config_is_structured(tmp_path: Path, registry: PluginRegistry) -> None:
    p = write(
        tmp_path,
        """
        [engine]
        engine_id = "${HOST:-local}"
        max_concurrent_sessions = 7
        session_timeout = "2m"

        [store]
        backend = "acme"
        path = "${DATA}/s.db"
        ttl = "1h"

        [[limiter]]
        backend = "window"
        key = "tenant"
        requests_per_window = 600
        window = "1m"

        [[limiter]]
        backend = "window"
        key = "user"
        requests_per_window = 15
        window = 60
    """,
    )
    cfg = load_config(p, registry, {"DATA": "/var/data"})
    assert cfg.engine == EngineSettings("local", 7, Duration(120.0))
    assert cfg.store is not None and cfg.store.options == StoreOptions("/var/data/s.db", 3600.0)
    assert [(c.key, c.options) for c in cfg.limiters] == [
        ("tenant", LimiterOptions(600, 60.0)),
        ("user", LimiterOptions(15, 60.0)),
    ]
    assert cfg.store.create(registry) == ("acme-store", cfg.store.options)


def test_every_error_is_reported_with_file_and_path(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    p = write(
        tmp_path,
        """
        [engine]
        max_concurrent_sessions = "many"

        [store]
        backend = "acme"
        path = 3
        tll = "1h"
        ttl = "soon"

        [[limiter]]
        backend = "windw"
        key = "user"

        [[limiter]]
        backend = "window"
        requests_per_window = 5
        window = "1m"
    """,
    )
    errs = errors_of(p, registry)
    assert all(e.startswith(f"{p}: $.") for e in errs), errs
    text = "\n".join(errs)
    assert "$.engine.max_concurrent_sessions: expected an integer, got 'many'" in text
    assert "$.store.path: expected a string, got 3" in text
    assert "$.store: unknown key 'tll'; did you mean 'ttl'?" in text
    assert '$.store.ttl: expected a duration like "250ms", "30s"' in text
    assert (
        "$.limiter[0].backend: unknown rate limiter backend 'windw'; did you mean 'window'?" in text
    )
    assert "$.limiter[1]: missing key 'key'" in text


def test_missing_required_option(tmp_path: Path, registry: PluginRegistry) -> None:
    p = write(tmp_path, '[store]\nbackend = "acme"\n')
    assert errors_of(p, registry) == [f"{p}: $.store.path: required key missing"]


def test_known_backend_not_installed_says_what_to_install(
    tmp_path: Path, registry: PluginRegistry
) -> None:
    p = write(tmp_path, '[store]\nbackend = "redis"\nurl = "redis://x"\n')
    (err,) = errors_of(p, registry)
    assert "$.store.backend" in err and "pip install spectra-redis" in err


def test_missing_backend_key_lists_available(tmp_path: Path, registry: PluginRegistry) -> None:
    p = write(tmp_path, '[store]\npath = "x"\n')
    (err,) = errors_of(p, registry)
    assert "$.store: missing key 'backend'" in err and "'acme'" in err


def test_unknown_section_suggests(tmp_path: Path, registry: PluginRegistry) -> None:
    p = write(tmp_path, '[stor]\nbackend = "acme"\n')
    (err,) = errors_of(p, registry)
    assert "unknown section [stor]; did you mean [store]?" in err


def test_malformed_toml_names_file_and_line(tmp_path: Path, registry: PluginRegistry) -> None:
    p = write(tmp_path, '[store]\nbackend = "acme\n')
    (err,) = errors_of(p, registry)
    assert err.startswith(f"{p}: invalid TOML") and "line 2" in err


def test_missing_file(tmp_path: Path, registry: PluginRegistry) -> None:
    (err,) = errors_of(tmp_path / "nope.toml", registry)
    assert "config file not found" in err


def test_unset_variable_without_default(tmp_path: Path, registry: PluginRegistry) -> None:
    p = write(tmp_path, '[store]\nbackend = "acme"\npath = "${NOPE}"\n')
    (err,) = errors_of(p, registry)
    assert "$.store.path: environment variable NOPE is not set" in err


def test_interpolation_forms() -> None:
    value, errs = interpolate(
        {"a": "${X}", "b": "${Y:-dflt}", "c": ["$${X}", "${X}-${Z:-}"], "d": 5},
        env={"X": "x", "Y": ""},
    )
    assert errs == []
    assert value == {"a": "x", "b": "dflt", "c": ["${X}", "x-"], "d": 5}


def test_broken_plugin_backend_in_config_names_it(tmp_path: Path) -> None:
    def boom() -> object:
        raise ImportError("cannot import aiosqlite")

    reg = load_plugins([PluginSource("sqlite", boom, "spectra-sqlite", "0.1.0")], disabled=[])
    p = write(tmp_path, '[store]\nbackend = "sqlite"\npath = "x.db"\n')
    (err,) = errors_of(p, reg)
    assert "plugin 'sqlite' (spectra-sqlite) failed to load: ImportError: cannot import" in err
    assert reg.names(BackendKind.SESSION_STORE) == []


def _identifier(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.isidentifier():
        raise ValueError(f"{attribute.name} must be an SQL identifier, got {value!r}")


@attrs.frozen
class Pool:
    size: int = attrs.field(default=4, validator=attrs.validators.ge(1))


@attrs.frozen
class SchemaStoreOptions:
    dsn: str
    schema: str = attrs.field(default="public", validator=_identifier)
    pool: Pool = attrs.field(factory=Pool)


def test_validator_errors_name_the_key_also_nested(tmp_path: Path) -> None:
    mod = types.ModuleType("pg")

    @hookimpl
    def spectra_register_session_stores(register):  # type: ignore[no-untyped-def]
        register("pg", lambda o: o, SchemaStoreOptions)

    mod.spectra_register_session_stores = spectra_register_session_stores  # type: ignore[attr-defined]
    reg = load_plugins([PluginSource.of("pg", mod, "pg-spectra")], disabled=[])
    p = write(
        tmp_path,
        '[store]\nbackend = "pg"\ndsn = "postgres://x"\nschema = "no such"\npool = {size = 0}\n',
    )
    assert errors_of(p, reg) == [
        f"{p}: $.store.schema: schema must be an SQL identifier, got 'no such'",
        f"{p}: $.store.pool.size: 'size' must be >= 1: 0",
    ]
