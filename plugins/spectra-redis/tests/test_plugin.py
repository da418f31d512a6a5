"""Registration, configuration, shared pools and what errors show."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectra_core import BackendKind, ConfigError, SessionManager
from spectra_core.config import build_breaker, build_rate_limiter, build_store, parse_config
from spectra_core.errors import InvalidArgumentError
from spectra_core.plugins import load_plugins
from spectra_core.rate_limit import RateLimitRequest
from spectra_redis import (
    RedisCircuitBreaker,
    RedisHealthCheck,
    RedisRateLimiter,
    RedisSessionStore,
    redact,
)
from spectra_redis._connection import pool_count
from spectra_sqlite import SQLiteSessionStore


def test_every_kind_is_registered_as_redis() -> None:
    registry = load_plugins()
    for kind in (
        BackendKind.SESSION_STORE,
        BackendKind.RATE_LIMITER,
        BackendKind.CIRCUIT_BREAKER,
        BackendKind.HEALTH_CHECK,
        BackendKind.EVENT_LOG,
        BackendKind.JOB_QUEUE,
    ):
        assert registry.get(kind, "redis").distribution == "spectra-redis"


def test_redact_hides_the_password_only() -> None:
    assert redact("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert redact("redis://:pw@host/0") == "redis://:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", ""])
def test_bad_urls_are_refused_naming_the_form(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="redis://"):
        RedisSessionStore(url)


async def test_a_config_builds_every_backend_with_a_cold_store(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    registry = load_plugins()
    config = parse_config(
        {
            "store": {
                "backend": "redis",
                "url": redis_url,
                "ttl": "10m",
                "key_prefix": prefix,
                "cold": {"backend": "sqlite", "path": str(tmp_path / "cold.db")},
            },
            "limiter": [
                {"backend": "redis", "key": "tenant", "url": redis_url,
                 "requests_per_window": 2, "window": "1m", "key_prefix": f"{prefix}:t"},
                {"backend": "redis", "key": "user", "url": redis_url,
                 "requests_per_window": 5, "window": "1m", "key_prefix": f"{prefix}:u"},
            ],
            "breaker": {"backend": "redis", "url": redis_url, "name": "svc",
                        "key_prefix": prefix, "failure_mode": "closed"},
        },
        "spectra.toml",
        registry,
    )  # fmt: skip
    store = build_store(config, registry)
    assert isinstance(store, RedisSessionStore)
    assert store.ttl_seconds == 600 and isinstance(store.cold_store, SQLiteSessionStore)
    chain = build_rate_limiter(config, registry)
    assert chain._atomic_group() is not None  # both on one server: one script call
    breaker = build_breaker(config, registry)
    assert isinstance(breaker, RedisCircuitBreaker) and breaker.failure_mode == "closed"
    async with store:
        s = await SessionManager(store).create(user_id="u")
        assert (await store.cold_store.load(s.id)).user_id == "u"  # type: ignore[union-attr]
        request = RateLimitRequest("u", tenant_id="acme")
        assert [(await chain.check_limit(request)).allowed for _ in range(3)] == [
            True,
            True,
            False,
        ]
        assert pool_count() == 1  # store, limiters and breaker share one pool
        for limiter, _ in chain.limiters:
            await limiter.aclose()  # type: ignore[attr-defined]
        await breaker.aclose()
        assert pool_count() == 1
    assert pool_count() == 0  # closed with its last user


def test_a_bad_cold_table_names_the_key() -> None:
    registry = load_plugins()
    config = parse_config(
        {"store": {"backend": "redis", "cold": {"backend": "sqlite"}}}, "spectra.toml", registry
    )
    with pytest.raises(ConfigError, match=r"spectra.toml: \$.store: cold.path"):
        build_store(config, registry)
    config = parse_config(
        {"store": {"backend": "redis", "cold": {"backend": "redis"}}}, "spectra.toml", registry
    )
    with pytest.raises(ConfigError, match="durable store"):
        build_store(config, registry)


def test_bad_options_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\$.limiter\[0\]\.failure_mode: failure_mode must be"):
        parse_config(
            {"limiter": [{"backend": "redis", "key": "user", "requests_per_window": 1,
                          "window": "1s", "failure_mode": "sideways"}]},
            "spectra.toml",
            load_plugins(),
        )  # fmt: skip


async def test_health_check_reports_latency_and_failure(redis_url: str) -> None:
    check = RedisHealthCheck(redis_url, timeout=2)
    result = await check.check()
    assert result.ok and result.latency_ms is not None and result.latency_ms >= 0
    await check.aclose()
    down = RedisHealthCheck("redis://:pw@127.0.0.1:1/0", timeout=0.5)
    result = await down.check()
    assert not result.ok and result.latency_ms is None
    assert "127.0.0.1:1" in result.detail and "pw" not in result.detail
    await down.aclose()


async def test_limiter_validates_its_input(redis_url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="failure_mode"):
        RedisRateLimiter(redis_url, 1, 1_000, failure_mode="maybe")  # type: ignore[arg-type]
    limiter = RedisRateLimiter(redis_url, 1, 1_000)
    with pytest.raises(InvalidArgumentError, match="key"):
        await limiter.check_limit("")
    await limiter.aclose()
