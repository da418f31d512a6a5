"""Batched decisions against the reference model of tests/test_rate_limit_properties.py
(hypothesis, real Redis): requests made in the same loop step are decided by one script
call, exactly as if each were sent alone, in the order they were made."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from _redis_env import REQUIRED, URL, WHY_NOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectra_core import CompositeRateLimiter, RateLimitRequest, RateLimitResult
from spectra_core.rate_limit import combine_results
from spectra_core.testing import FakeClock
from spectra_redis import RedisRateLimiter

_spec = importlib.util.spec_from_file_location(
    "_limiter_reference", Path(__file__).parents[3] / "tests" / "rate_limit" / "test_properties.py"
)
assert _spec is not None and _spec.loader is not None
ref = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ref
_spec.loader.exec_module(ref)

KEYS = st.sampled_from(["a", "b"])
#: ("check", key, cost) on limiter A; ("reserve", key, cost) on A, released after the
#: round; ("both", key, cost): a composite of A (on the user) and B (on the tenant "t")
OPS = st.tuples(st.sampled_from(["check", "reserve", "both"]), KEYS, st.integers(1, 4))
ROUND = st.tuples(st.lists(OPS, min_size=1, max_size=8), st.integers(0, 1_500))


def _unconsumed(model: Any, key: str, cost: int, now_ms: int) -> tuple[Any, ...]:
    """A key's decision when another key of the same request rejected it: nothing taken."""
    allowed, remaining, retry_after, reset_in = model.decide(key, cost, now_ms)
    if not allowed:
        return allowed, remaining, retry_after, reset_in
    live = model.live(key, now_ms)
    busy = [a.t_ms + model.window_ms - now_ms for a in live]
    return True, remaining + cost, 0.0, max(busy) if busy else 0


async def _rounds(
    caps: tuple[int, int], window_ms: int, rounds: list[tuple[list[Any], int]]
) -> None:
    clock = FakeClock()
    wall0 = clock.time()
    prefix = f"spectra-test-{uuid.uuid4().hex[:12]}"
    a = RedisRateLimiter(URL, caps[0], window_ms, key_prefix=f"{prefix}:a", clock=clock)
    b = RedisRateLimiter(URL, caps[1], window_ms, key_prefix=f"{prefix}:b", clock=clock)
    both = CompositeRateLimiter([{"limiter": a, "key": "user"}, {"limiter": b, "key": "tenant"}])
    model_a, model_b = ref.WindowModel(caps[0], window_ms), ref.WindowModel(caps[1], window_ms)
    now_ms = 0
    try:
        for ops, advance_ms in rounds:
            calls: list[Coroutine[Any, Any, Any]] = []
            for kind, key, cost in ops:
                if kind == "check":
                    calls.append(a.check_limit(key, cost))
                elif kind == "reserve":
                    calls.append(a.reserve(key, cost))
                else:
                    calls.append(both.check_limit(RateLimitRequest(key, tenant_id="t"), cost))
            outcomes = await asyncio.gather(*calls)
            held = []
            for (kind, key, cost), outcome in zip(ops, outcomes, strict=True):
                result = outcome if kind != "reserve" else outcome.result
                if kind == "both":
                    ea = model_a.decide(key, cost, now_ms)
                    eb = model_b.decide("t", cost, now_ms)
                    if ea[0] and eb[0]:
                        model_a.admit(key, cost, now_ms)
                        model_b.admit("t", cost, now_ms)
                    else:
                        ea = _unconsumed(model_a, key, cost, now_ms)
                        eb = _unconsumed(model_b, "t", cost, now_ms)
                    expected = combine_results(
                        [
                            RateLimitResult(e[0], e[1], wall0 + (now_ms + e[3]) / 1000, e[2])
                            for e in (ea, eb)
                        ]
                    )
                    assert (result.allowed, result.remaining) == (
                        expected.allowed,
                        expected.remaining,
                    ), (key, cost, result, expected)
                    assert result.retry_after == pytest.approx(expected.retry_after, abs=1e-9)
                    assert result.reset_at == pytest.approx(expected.reset_at, abs=1e-6)
                    continue
                e = model_a.decide(key, cost, now_ms)
                ref.assert_matches(result, e, clock, wall0, now_ms)
                if e[0]:
                    admission = model_a.admit(key, cost, now_ms)
                    if kind == "reserve":
                        held.append((outcome, key, admission))
            for reservation, key, admission in held:
                await reservation.release()
                model_a.admitted[key].remove(admission)
            clock.advance(advance_ms / 1000)
            now_ms += advance_ms
    finally:
        client = aioredis.Redis.from_url(URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await a.aclose()
        await b.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    caps=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    window_ms=st.integers(100, 2_000),
    rounds=st.lists(ROUND, min_size=1, max_size=6),
)
def test_a_batch_decides_as_the_requests_would_one_by_one(
    caps: tuple[int, int], window_ms: int, rounds: list[tuple[list[Any], int]]
) -> None:
    if WHY_NOT is not None:
        if REQUIRED:
            pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {WHY_NOT}")
        pytest.skip(WHY_NOT)
    asyncio.run(_rounds(caps, window_ms, rounds))
