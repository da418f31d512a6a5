"""The engine with rate limits and a circuit breaker, built in code and from config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import stamina

from spectra_core import (
    AuditEntry,
    CapacityError,
    CompositeRateLimiter,
    DefaultCircuitBreaker,
    LocalRateLimiter,
    RateLimitedError,
    SessionManager,
)
from spectra_core.agent import ProviderError
from spectra_core.agent.builtin import ScriptedProvider
from spectra_core.config import build_engine, load_config
from spectra_core.engine import RunStatus, SessionEngine
from spectra_core.plugins import load_plugins
from spectra_core.testing import FakeClock, GatedProvider

pytestmark = pytest.mark.needs_plugins


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Any:
    with stamina.set_testing(True, attempts=1):
        yield


def composite(clock: FakeClock, tenant: int, user: int) -> CompositeRateLimiter:
    return CompositeRateLimiter(
        [
            {"limiter": LocalRateLimiter(tenant, 60_000, clock=clock), "key": "tenant"},
            {"limiter": LocalRateLimiter(user, 60_000, clock=clock), "key": "user"},
        ]
    )


async def test_rate_limited_run_never_calls_the_model_and_is_audited(
    manager: SessionManager, clock: FakeClock
) -> None:
    provider = ScriptedProvider(["one", "two"])
    engine = SessionEngine(manager, composite(clock, 60, 1), provider=provider, clock=clock)
    engine.start()
    first = await engine.run("u1", "hi", options={"tenant_id": "acme"})
    assert first.status is RunStatus.COMPLETED
    with pytest.raises(RateLimitedError) as info:
        await engine.run("u1", "again", first.session_id, options={"tenant_id": "acme"})
    assert info.value.retry_after == pytest.approx(60.0)
    assert len(provider.requests) == 1
    session = await manager.load(first.session_id)
    audit = session.entries[-1]
    assert isinstance(audit, AuditEntry) and audit.event_type == "rate_limited"
    assert audit.details["retry_after"] == pytest.approx(60.0)
    events = [
        e
        async for e in await engine.run_streaming(
            "u1", "streamed", first.session_id, {"tenant_id": "acme"}
        )
    ]
    assert [(e.type.value, e.status) for e in events] == [("run_end", RunStatus.RATE_LIMITED)]
    clock.advance(60)
    assert (
        await engine.run("u1", "later", first.session_id, options={"tenant_id": "acme"})
    ).status is RunStatus.COMPLETED


async def test_original_quick_start_composite(manager: SessionManager, clock: FakeClock) -> None:
    """User 1/min under tenant 10/min: one user's 20 requests admit 1; another gets in."""
    limiter = composite(clock, 10, 1)
    engine = SessionEngine(manager, limiter, clock=clock)
    engine.start()
    outcomes = []
    for _ in range(20):
        try:
            await engine.run("alice", "hi", options={"tenant_id": "t"})
            outcomes.append("ok")
        except RateLimitedError:
            outcomes.append("limited")
    assert outcomes.count("ok") == 1
    tenant_limiter = limiter.limiters[0][0]
    assert (await tenant_limiter.check_limit("t", 1)).remaining == 8  # 9 left before this
    assert (await engine.run("bob", "hi", options={"tenant_id": "t"})).status is (
        RunStatus.COMPLETED
    )


async def test_capacity_refusal_burns_no_quota(manager: SessionManager, clock: FakeClock) -> None:
    user_limit = LocalRateLimiter(2, 60_000, clock=clock)
    gated = GatedProvider()
    engine = SessionEngine(
        manager, user_limit, provider=gated, clock=clock, max_concurrent_sessions=1
    )
    engine.start()
    running = asyncio.create_task(engine.run("u", "one"))
    await gated.started.wait()
    for _ in range(5):
        with pytest.raises(CapacityError):
            await engine.run("u", "refused")
    gated.release()
    await running
    assert (await engine.run("u", "two")).status is RunStatus.COMPLETED
    with pytest.raises(RateLimitedError):
        await engine.run("u", "three")


async def test_breaker_opens_and_fails_fast(manager: SessionManager, clock: FakeClock) -> None:
    breaker = DefaultCircuitBreaker(failure_threshold=2, reset_timeout_ms=30_000, clock=clock)
    provider = ScriptedProvider([ProviderError("upstream 500", retryable=True)] * 2 + ["ok"])
    engine = SessionEngine(manager, circuit_breaker=breaker, provider=provider, clock=clock)
    engine.start()
    for _ in range(2):
        assert (await engine.run("u", "hi")).status is RunStatus.FAILED
    fast = await engine.run("u", "hi")
    assert fast.status is RunStatus.FAILED and "CircuitOpenError" in (fast.error or "")
    assert len(provider.requests) == 2
    clock.advance(30)
    assert (await engine.run("u", "hi")).text == "ok"


async def test_engine_from_config_with_composite_and_breaker(
    tmp_path: Path, clock: FakeClock
) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text("""
        [engine]
        engine_id = "cfg-engine"
        max_concurrent_sessions = 5
        session_timeout = "30s"

        [store]
        backend = "memory"

        [[limiter]]
        backend = "memory"
        key = "tenant"
        requests_per_window = 10
        window = "1m"

        [[limiter]]
        backend = "memory"
        key = "user"
        requests_per_window = 1
        window = "1m"

        [breaker]
        backend = "memory"
        failure_threshold = 3
        reset_timeout = "30s"
        half_open_max_requests = 2

        [model]
        provider = "scripted"
        replies = ["first reply", "second reply"]
    """)
    registry = load_plugins(disabled=[])
    config = load_config(cfg, registry)
    engine = build_engine(config, registry)
    assert isinstance(engine.rate_limiter, CompositeRateLimiter)
    assert [dim for _, dim in engine.rate_limiter.limiters] == ["tenant", "user"]
    assert isinstance(engine.circuit_breaker, DefaultCircuitBreaker)
    assert engine.max_concurrent_sessions == 5 and engine.engine_id == "cfg-engine"
    engine.start()
    result = await engine.run("u", "hi", options={"tenant_id": "t"})
    assert result.text == "first reply"
    with pytest.raises(RateLimitedError):
        await engine.run("u", "again", options={"tenant_id": "t"})
    assert (await engine.run("v", "hi", options={"tenant_id": "t"})).text == "second reply"
    await engine.stop()


def test_bad_limiter_key_in_config(tmp_path: Path) -> None:
    from spectra_core import ConfigError

    cfg = tmp_path / "spectra.toml"
    cfg.write_text(
        '[[limiter]]\nbackend = "memory"\nkey = "tenatn"\nrequests_per_window = 0\nwindow = "1m"\n'
    )
    with pytest.raises(ConfigError, match="did you mean 'tenant'"):
        load_config(cfg, load_plugins(disabled=[]))
