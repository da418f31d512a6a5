"""What ``spectra check`` accepts, ``build_engine`` builds; what it refuses is named by
file and key path; no document makes validation crash."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spectra_core import ConfigError
from spectra_core.config import (
    MAX_DEPTH,
    build_engine,
    check_buildable,
    load_config,
    parse_config,
)
from spectra_core.config import _close_engine as close_engine
from spectra_core.plugins import PluginRegistry, load_plugins

pytestmark = pytest.mark.needs_plugins

SOURCE = "t.toml"
#: "file: $.key.path: message", the key path made of names and [indexes]
ERROR_LINE = re.compile(rf"^{re.escape(SOURCE)}: \$(\.[A-Za-z_][\w]*|\[\d+\])*: \S")


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return load_plugins()


def refused(doc: dict[str, Any], registry: PluginRegistry) -> list[str]:
    """The lines ``spectra check`` prints for ``doc`` (empty if it accepts it)."""
    try:
        config = parse_config(doc, SOURCE, registry, env={})
    except ConfigError as exc:
        return exc.errors
    return asyncio.run(check_buildable(config, registry))


# --- validators name the key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        (
            {"engine": {"max_concurrent_sessions": 0}},
            "$.engine.max_concurrent_sessions: 'max_concurrent_sessions' must be >= 1: 0",
        ),
        (
            {"engine": {"session_timeout": "0s"}},
            "$.engine.session_timeout: session_timeout must be at least 1ms",
        ),
        ({"engine": {"busy": "queue"}}, "$.engine.busy: 'busy' must be in"),
        (
            {"store": {"backend": "sqlite", "path": "x.db", "synchronous": "fast"}},
            "$.store.synchronous: synchronous must be one of off, normal, full, extra",
        ),
        (
            {"store": {"backend": "sqlite", "path": ""}},
            "$.store.path: path must name the database file",
        ),
        (
            {"breaker": {"backend": "memory", "failure_threshold": 0}},
            "$.breaker.failure_threshold: circuit breaker failure_threshold must be",
        ),
        (
            {
                "limiter": [
                    {"backend": "memory", "key": "user", "requests_per_window": -1, "window": "1m"}
                ]
            },
            "$.limiter[0].requests_per_window: rate limiter requests_per_window must be",
        ),
        (
            {
                "limiter": [
                    {"backend": "memory", "key": "user", "requests_per_window": 5, "window": 0}
                ]
            },
            "$.limiter[0].window: rate limiter window_ms must be a positive number",
        ),
        (
            {"model": {"provider": "echo", "chunk_size": 0}},
            "$.model.chunk_size: 'chunk_size' must be >= 1: 0",
        ),
    ],
)
def test_errors_name_the_key(doc: dict[str, Any], line: str, registry: PluginRegistry) -> None:
    errors = refused(doc, registry)
    assert any(e.startswith(f"{SOURCE}: {line}") for e in errors), errors


def test_every_refused_key_of_a_table_is_reported(registry: PluginRegistry) -> None:
    errors = refused({"engine": {"max_concurrent_sessions": 0, "session_timeout": 0}}, registry)
    assert [e.split(": ")[1] for e in errors] == [
        "$.engine.max_concurrent_sessions",
        "$.engine.session_timeout",
    ]


def test_what_the_engine_refuses_check_refuses(registry: PluginRegistry) -> None:
    # 0.5ms passes the duration parser but is 0 whole milliseconds for the engine
    errors = refused({"engine": {"session_timeout": "0.5ms"}}, registry)
    assert errors and errors[0].startswith(f"{SOURCE}: $.engine.session_timeout:")


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 10**400])
def test_durations_that_are_not_finite_are_refused_at_their_key(
    value: float, registry: PluginRegistry
) -> None:
    (error,) = refused({"engine": {"capacity_wait": value}}, registry)
    assert error.startswith(f"{SOURCE}: $.engine.capacity_wait: ") and "duration" in error


# --- deep nesting -------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_nesting_is_a_config_error(depth: int, registry: PluginRegistry) -> None:
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse_config({"store": {"backend": "memory", "x": nested(depth)}}, SOURCE, registry)


@pytest.mark.parametrize(
    "text", ["a = " + "[" * 50_000 + "]" * 50_000, "a = " + "{b=" * 50_000 + "1" + "}" * 50_000]
)
def test_deeply_nested_toml_is_a_config_error(
    tmp_path: Path, text: str, registry: PluginRegistry
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="nested more than") as info:
        load_config(path, registry)
    assert str(info.value).startswith(f"{path}: $")


# --- the property: check and build agree --------------------------------------------

junk = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=8)
    | st.sampled_from(["30s", "0s", "0.5ms", "250ms", "1h", "1e3", "nan", "-1s", "36500d"])
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values most of the time, so that many documents are accepted and built."""
    return st.one_of(valid, valid, valid, valid, valid, valid, junk)


count = mostly(st.integers(-1, 5))
duration = mostly(st.sampled_from(["30s", "0s", "1ms", "0.5ms", 0, 1, 0.0001, 2.5, "1h"]))


def table(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


def documents(folder: str) -> st.SearchStrategy[dict[str, Any]]:
    engine = table(
        {},
        {
            "engine_id": mostly(st.text(max_size=5)),
            "max_concurrent_sessions": count,
            "session_timeout": duration,
            "busy": mostly(st.sampled_from(["reject", "wait", "queue"])),
            "capacity_wait": duration,
            "max_input_chars": count,
        },
    )
    store = st.one_of(
        table({"backend": st.just("memory")}, {"ttl": duration}),
        table(
            {"backend": st.just("fs")},
            {
                "directory": mostly(
                    st.sampled_from([f"{folder}/fs", f"{folder}/fs", "", f"{folder}/a\x00b"])
                ),
                "durability": mostly(st.sampled_from(["fsync", "none", "FSYNC"])),
            },
        ),
        table(
            {"backend": st.just("sqlite")},
            {
                "path": mostly(
                    st.sampled_from([f"{folder}/s.db", f"{folder}/s.db", "", f"{folder}/\x00.db"])
                ),
                "synchronous": mostly(st.sampled_from(["full", "NORMAL", "off", "fast"])),
                "busy_timeout": duration,
            },
        ),
    )
    limiter = table(
        {"backend": st.just("memory"), "key": st.sampled_from(["user", "tenant", "nobody"])},
        {
            "requests_per_window": count,
            "window": duration,
            "burst_allowance": count,
            "max_keys": count,
        },
    )
    breaker = table(
        {"backend": st.just("memory")},
        {
            "failure_threshold": count,
            "reset_timeout": duration,
            "half_open_max_requests": count,
            "failure_rate_threshold": mostly(st.floats(-1, 200)),
            "sliding_window_size": count,
            "minimum_number_of_calls": count,
            "slow_call_duration": duration,
            "slow_call_rate_threshold": mostly(st.floats(-1, 200)),
            "max_half_open": duration,
        },
    )
    model = st.one_of(
        table(
            {"provider": st.just("echo")},
            {"prefix": mostly(st.text(max_size=3)), "chunk_size": count},
        ),
        table(
            {"provider": st.just("scripted")},
            {"replies": mostly(st.lists(st.text(max_size=3))), "chunk_size": count},
        ),
    )
    return table(
        {"store": store, "engine": engine},
        {
            "limiter": st.lists(limiter, max_size=2),
            "breaker": breaker,
            "model": model,
        },
    )


FOLDER = tempfile.mkdtemp(prefix="spectra-config-")


@pytest.fixture(scope="module", autouse=True)
def _remove_folder() -> Iterator[None]:
    yield
    shutil.rmtree(FOLDER, ignore_errors=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(FOLDER))
def test_check_accepts_exactly_what_build_builds(doc: dict[str, Any]) -> None:
    registry = load_plugins()
    errors = refused(doc, registry)
    for line in errors:
        assert ERROR_LINE.match(line), line
    event("refused" if errors else "accepted")
    if errors:
        return
    config = parse_config(doc, SOURCE, registry, env={})
    engine = build_engine(config, registry)  # must not raise: check accepted it
    asyncio.run(close_engine(engine))
