"""Scenarios for LocalRateLimiter and CompositeRateLimiter, on a fake clock."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

import spectra_core
from spectra_core import (
    CompositeRateLimiter,
    InvalidArgumentError,
    LocalRateLimiter,
    RateLimiter,
    RateLimitRequest,
    RateLimitResult,
)
from spectra_core import rate_limit as rate_limit_module
from spectra_core.rate_limit import Reservation, combine_results
from spectra_core.testing import FakeClock, RateLimiterConformance


class TestLocalRateLimiterConformance(RateLimiterConformance):
    @pytest.fixture
    def make_limiter(self, clock: FakeClock) -> Callable[..., RateLimiter]:
        def make(rpw: int, window_ms: float, burst_allowance: int = 0) -> RateLimiter:
            return LocalRateLimiter(rpw, window_ms, burst_allowance, clock=clock)

        return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def per_minute(clock: FakeClock, n: int, **kw: Any) -> LocalRateLimiter:
    return LocalRateLimiter(n, 60_000, clock=clock, **kw)


# --- the scenario -------------------------------------------------------------


async def test_user_limit_under_tenant_limit(clock: FakeClock) -> None:
    tenant = per_minute(clock, 10)
    user = per_minute(clock, 1)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    alice = RateLimitRequest(user_id="alice", tenant_id="acme")
    results = [await composite.check_limit(alice) for _ in range(20)]
    assert [r.allowed for r in results] == [True] + [False] * 19
    assert all(r.retry_after == pytest.approx(60.0) for r in results[1:])

    # The 19 rejected requests took nothing from the tenant: 9 of its 10 are left.
    bob = RateLimitRequest(user_id="bob", tenant_id="acme")
    r = await composite.check_limit(bob)
    assert r.allowed
    assert r.remaining == 0  # bob's own limit (1/min) is now used up
    probe = await tenant.reserve("acme")
    assert probe.result.remaining == 7  # 10 - alice - bob - this probe
    await probe.release()
    assert [(await tenant.check_limit("acme")).allowed for _ in range(9)] == [True] * 8 + [False]


async def test_a_plain_string_is_a_user_id(clock: FakeClock) -> None:
    user = per_minute(clock, 2)
    composite = CompositeRateLimiter([{"limiter": user, "key": "user"}])
    assert (await composite.check_limit("user-123")).remaining == 1
    assert (await user.check_limit("user-123")).remaining == 0


# --- all or nothing -------------------------------------------------------------------


async def test_rejection_by_the_first_limiter_consumes_nothing_from_the_rest(
    clock: FakeClock,
) -> None:
    tenant = per_minute(clock, 2)
    user = per_minute(clock, 5)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    req = RateLimitRequest("u", tenant_id="t")
    assert [(await composite.check_limit(req)).allowed for _ in range(6)] == [True] * 2 + [
        False
    ] * 4
    r = await user.check_limit("u", 3)
    assert (r.allowed, r.remaining) == (True, 0)


async def test_rejection_by_a_later_limiter_consumes_nothing_from_earlier_ones(
    clock: FakeClock,
) -> None:
    tenant = per_minute(clock, 10)
    user = per_minute(clock, 3)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    req = RateLimitRequest("u", tenant_id="t")
    assert (await composite.check_limit(req, 2)).allowed
    r = await composite.check_limit(req, 2)  # the user has 1 left: rejected
    assert (r.allowed, r.remaining) == (False, 1)
    r = await tenant.check_limit("t", 8)
    assert (r.allowed, r.remaining) == (True, 0)


async def test_result_is_the_most_restrictive(clock: FakeClock) -> None:
    a = LocalRateLimiter(5, 10_000, clock=clock)
    b = LocalRateLimiter(3, 20_000, clock=clock)
    c = LocalRateLimiter(4, 5_000, clock=clock)
    composite = CompositeRateLimiter(
        [
            {"limiter": a, "key": "tenant"},
            {"limiter": b, "key": "user"},
            {"limiter": c, "key": "provider"},
        ]
    )
    req = RateLimitRequest("u", tenant_id="t", provider="p")
    t0 = clock.time()
    r = await composite.check_limit(req)
    assert r == RateLimitResult(True, 2, t0 + 20.0, 0.0)
    clock.advance(1.0)
    await composite.check_limit(req)
    await composite.check_limit(req)
    r = await composite.check_limit(req)  # b is full until t=20, c until never (not full)
    assert (r.allowed, r.remaining) == (False, 0)
    assert r.retry_after == pytest.approx(19.0)
    assert r.reset_at == pytest.approx(t0 + 21.0)


async def test_retry_after_is_the_latest_among_rejecting_limiters(clock: FakeClock) -> None:
    a = LocalRateLimiter(1, 10_000, clock=clock)
    b = LocalRateLimiter(1, 30_000, clock=clock)
    composite = CompositeRateLimiter(
        [{"limiter": a, "key": "user"}, {"limiter": b, "key": "tenant"}]
    )
    req = RateLimitRequest("u", tenant_id="t")
    assert (await composite.check_limit(req)).allowed
    r = await composite.check_limit(req)
    assert r.retry_after == pytest.approx(30.0)
    clock.advance(r.retry_after)
    assert (await composite.check_limit(req)).allowed


async def test_cost_above_one_limit_is_rejected_forever_and_consumes_nothing(
    clock: FakeClock,
) -> None:
    tenant = per_minute(clock, 100)
    user = per_minute(clock, 5)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    r = await composite.check_limit(RateLimitRequest("u", tenant_id="t"), 6)
    assert not r.allowed
    assert r.retry_after == math.inf
    assert (await tenant.check_limit("t", 100)).allowed


def test_combine_results() -> None:
    ok = RateLimitResult(True, 4, 100.0, 0.0)
    no = RateLimitResult(False, 1, 90.0, 7.0)
    no2 = RateLimitResult(False, 0, 80.0, 3.0)
    assert combine_results([ok]) == ok
    assert combine_results([ok, no, no2]) == RateLimitResult(False, 0, 100.0, 7.0)
    assert combine_results([ok, RateLimitResult(True, 2, 50.0, 0.0)]) == RateLimitResult(
        True, 2, 100.0, 0.0
    )


# --- dimensions and keys --------------------------------------------------------------


async def test_missing_dimension_is_an_error_and_consumes_nothing(clock: FakeClock) -> None:
    user = per_minute(clock, 5)
    tenant = per_minute(clock, 5)
    composite = CompositeRateLimiter(
        [{"limiter": user, "key": "user"}, {"limiter": tenant, "key": "tenant"}]
    )
    with pytest.raises(InvalidArgumentError, match=r"'tenant'.*tenant_id"):
        await composite.check_limit("u")
    with pytest.raises(InvalidArgumentError, match="tenant_id"):
        await composite.check_limit(RateLimitRequest("u", tenant_id=""))
    assert (await user.check_limit("u", 5)).allowed


@pytest.mark.parametrize(
    ("dimension", "request_kw", "key"),
    [
        ("user", {}, "u1"),
        ("tenant", {"tenant_id": "t1"}, "t1"),
        ("provider", {"provider": "openai"}, "openai"),
        ("session", {"session_id": "s1"}, "s1"),
        ("global", {}, "global"),
    ],
)
async def test_each_dimension_keys_its_limiter(
    clock: FakeClock, dimension: str, request_kw: dict[str, str], key: str
) -> None:
    limiter = per_minute(clock, 3)
    composite = CompositeRateLimiter([{"limiter": limiter, "key": dimension}])
    req = RateLimitRequest("u1", **request_kw)
    assert composite.keys_for(req) == [key]
    await composite.check_limit(req)
    assert (await limiter.check_limit(key)).remaining == 1


@pytest.mark.parametrize("dimension", ["provider", "session"])
async def test_missing_optional_dimensions(clock: FakeClock, dimension: str) -> None:
    composite = CompositeRateLimiter([{"limiter": per_minute(clock, 3), "key": dimension}])
    with pytest.raises(InvalidArgumentError, match=dimension):
        await composite.check_limit("u")


async def test_key_function(clock: FakeClock) -> None:
    limiter = per_minute(clock, 2)

    def tenant_and_provider(req: RateLimitRequest) -> str:
        return f"{req.tenant_id}/{req.provider}"

    composite = CompositeRateLimiter([{"limiter": limiter, "key": tenant_and_provider}])
    req = RateLimitRequest("u", tenant_id="t", provider="p")
    await composite.check_limit(req)
    assert (await limiter.check_limit("t/p")).remaining == 0
    assert composite.limiters == [(limiter, "tenant_and_provider")]

    bad = CompositeRateLimiter([{"limiter": per_minute(clock, 2), "key": lambda r: None}])
    with pytest.raises(InvalidArgumentError, match="non-empty string"):
        await bad.check_limit(req)


async def test_bad_request_type(clock: FakeClock) -> None:
    composite = CompositeRateLimiter([{"limiter": per_minute(clock, 2), "key": "user"}])
    with pytest.raises(InvalidArgumentError, match="RateLimitRequest"):
        await composite.check_limit(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="empty"):
        await composite.check_limit("")
    with pytest.raises(InvalidArgumentError, match="cost"):
        await composite.check_limit("u", 0)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "at least one"),
        ({"limiter": None, "key": "user"}, "list"),
        (["user"], "mapping"),
        ([{"key": "user"}], "no 'limiter'"),
        ([{"limiter": "LIMITER"}], "no 'key'"),
        ([{"limiter": "LIMITER", "key": "tenants"}], "did you mean 'tenant'"),
        ([{"limiter": "LIMITER", "key": 3}], "dimension name or a function"),
        ([{"limiter": "LIMITER", "key": "user", "cost": 2}], "unknown field"),
        ([{"limiter": object(), "key": "user"}], "not a RateLimiter"),
        (
            [{"limiter": "LIMITER", "key": "user"}, {"limiter": "LIMITER", "key": "tenant"}],
            "same object",
        ),
    ],
)
def test_constructor_errors(clock: FakeClock, entries: Any, message: str) -> None:
    limiter = per_minute(clock, 1)

    def fill(x: Any) -> Any:
        if x == "LIMITER":
            return limiter
        if isinstance(x, dict):
            return {k: fill(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fill(v) for v in x]
        return x

    with pytest.raises(InvalidArgumentError, match=message):
        CompositeRateLimiter(fill(entries))


# --- reservations and cancellation ----------------------------------------------------


async def test_composite_reservation(clock: FakeClock) -> None:
    tenant = per_minute(clock, 3)
    user = per_minute(clock, 3)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    req = RateLimitRequest("u", tenant_id="t")
    reservation = await composite.reserve(req, 2)
    assert isinstance(reservation, Reservation)
    assert reservation.result.allowed and reservation.result.remaining == 1
    assert not (await composite.check_limit(req, 2)).allowed
    await reservation.release()
    assert (await tenant.check_limit("t", 3)).allowed
    assert (await user.check_limit("u", 3)).allowed


async def test_reservation_as_context_manager(clock: FakeClock) -> None:
    limiter = per_minute(clock, 3)
    composite = CompositeRateLimiter([{"limiter": limiter, "key": "user"}])
    async with await composite.reserve("u") as reservation:
        assert reservation.allowed
    with pytest.raises(RuntimeError, match="boom"):
        async with await composite.reserve("u"):
            raise RuntimeError("boom")
    async with await limiter.reserve("u") as local:
        assert local.allowed
    assert (await limiter.check_limit("u")).remaining == 0  # two kept, one given back


class _GatedLimiter:
    """A real limiter whose reserve waits on a gate first, like a network backend."""

    def __init__(self, inner: LocalRateLimiter) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def check_limit(self, key: str, cost: int = 1) -> RateLimitResult:
        return await self.inner.check_limit(key, cost)

    async def reserve(self, key: str, cost: int = 1) -> Reservation:
        self.waiting.set()
        await self.gate.wait()
        return await self.inner.reserve(key, cost)


async def test_cancelled_check_releases_what_it_reserved(clock: FakeClock) -> None:
    tenant = per_minute(clock, 2)
    gated = _GatedLimiter(per_minute(clock, 2))
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": gated, "key": "user"}]
    )
    task = asyncio.create_task(composite.check_limit(RateLimitRequest("u", tenant_id="t")))
    await gated.waiting.wait()
    assert (await tenant.check_limit("t")).remaining == 0  # the pending check holds one
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await tenant.check_limit("t")).allowed  # given back: the second slot is free


async def test_interleaved_composites_never_over_admit(clock: FakeClock) -> None:
    tenant = per_minute(clock, 5)
    gated = _GatedLimiter(per_minute(clock, 3))
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": gated, "key": "user"}]
    )
    req = RateLimitRequest("u", tenant_id="t")
    tasks = [asyncio.create_task(composite.check_limit(req)) for _ in range(20)]
    await asyncio.sleep(0)
    gated.gate.set()
    results = await asyncio.gather(*tasks)
    admitted = sum(r.allowed for r in results)
    assert admitted == 3  # the user limit; the tenant's holds never let more through
    assert (await tenant.check_limit("t", 2)).allowed


# --- concurrency ----------------------------------------------------------------------


async def test_thousand_concurrent_requests_admit_exactly_n(clock: FakeClock) -> None:
    limiter = per_minute(clock, 64)
    results = await asyncio.gather(*(limiter.check_limit("k") for _ in range(1_000)))
    assert sum(r.allowed for r in results) == 64


async def test_thousand_concurrent_composite_requests(clock: FakeClock) -> None:
    tenant = per_minute(clock, 50)
    user = per_minute(clock, 8)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    reqs = [RateLimitRequest(f"u{i % 10}", tenant_id="t") for i in range(1_000)]
    results = await asyncio.gather(*(composite.check_limit(r) for r in reqs))
    admitted = [req.user_id for req, r in zip(reqs, results, strict=True) if r.allowed]
    assert len(admitted) == 50
    assert max(admitted.count(f"u{i}") for i in range(10)) <= 8


# --- LocalRateLimiter specifics -------------------------------------------------------


async def test_idle_keys_are_forgotten(clock: FakeClock) -> None:
    limiter = LocalRateLimiter(3, 1_000, clock=clock)
    for i in range(100):
        await limiter.check_limit(f"k{i}")
    assert limiter.key_count == 100
    clock.advance(1.0)
    await limiter.check_limit("fresh")
    assert limiter.key_count == 1
    for i in range(10):
        await limiter.check_limit(f"k{i}")
    clock.advance(2.0)
    assert limiter.purge() == 11
    assert limiter.key_count == 0


async def test_max_keys_bounds_memory_without_over_admitting(clock: FakeClock) -> None:
    limiter = LocalRateLimiter(1, 1_000, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert (await limiter.check_limit(key)).allowed
    clock.advance(0.25)
    r = await limiter.check_limit("d")
    assert (r.allowed, r.remaining) == (False, 0)
    assert r.retry_after == pytest.approx(0.75)
    assert not (await limiter.check_limit("a")).allowed  # "a" was not forgotten
    clock.advance(r.retry_after)
    assert (await limiter.check_limit("d")).allowed
    assert limiter.key_count <= 3


async def test_rejected_composite_flood_leaves_no_keys_behind(clock: FakeClock) -> None:
    user = per_minute(clock, 1)
    tenant = per_minute(clock, 1_000)
    composite = CompositeRateLimiter(
        [{"limiter": tenant, "key": "tenant"}, {"limiter": user, "key": "user"}]
    )
    await user.check_limit("u")
    for i in range(500):
        assert not (await composite.check_limit(RateLimitRequest("u", tenant_id=f"t{i}"))).allowed
    assert tenant.key_count == 0
    results = [
        await composite.check_limit(RateLimitRequest(f"v{i}", tenant_id="t")) for i in range(3)
    ]
    assert all(r.allowed for r in results)
    assert results[-1].remaining == 0  # the users' own limits, tenant still has 997


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 1000), {}, "requests_per_window must be a positive integer, got 0"),
        ((True, 1000), {}, "requests_per_window"),
        ((2.5, 1000), {}, "requests_per_window"),
        ((1, 0), {}, "window_ms must be a positive number"),
        ((1, -1), {}, "window_ms"),
        ((1, math.inf), {}, "window_ms"),
        ((1, math.nan), {}, "window_ms"),
        ((1, "60s"), {}, "window_ms"),
        ((1, 1e-9), {}, "shorter than one nanosecond"),
        ((1, 1000, -1), {}, "burst_allowance must be an integer >= 0"),
        ((1, 1000), {"max_keys": 0}, "max_keys"),
    ],
)
def test_local_constructor_errors(args: tuple[Any, ...], kwargs: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        LocalRateLimiter(*args, **kwargs)


async def test_default_clock_is_the_system_clock() -> None:
    limiter = LocalRateLimiter(2, 60_000)
    assert (await limiter.check_limit("k")).allowed
    assert (await limiter.check_limit("k")).allowed
    r = await limiter.check_limit("k")
    assert not r.allowed
    assert 0 < r.retry_after <= 60.0


async def test_sub_millisecond_windows(clock: FakeClock) -> None:
    limiter = LocalRateLimiter(1, 0.5, clock=clock)
    assert (await limiter.check_limit("k")).allowed
    r = await limiter.check_limit("k")
    assert r.retry_after == pytest.approx(0.0005)
    clock.advance(0.0005)
    assert (await limiter.check_limit("k")).allowed


def test_repr_and_limit(clock: FakeClock) -> None:
    limiter = LocalRateLimiter(10, 60_000, 5, clock=clock, max_keys=9)
    assert limiter.limit == 15
    assert "requests_per_window=10" in repr(limiter)
    composite = CompositeRateLimiter([{"limiter": limiter, "key": "tenant"}])
    assert "tenant" in repr(composite)


def test_public_api() -> None:
    for name in rate_limit_module.__all__:
        assert getattr(rate_limit_module, name) is not None
    for name in (
        "CompositeRateLimiter",
        "LocalRateLimiter",
        "RateLimitRequest",
        "RateLimitResult",
        "RateLimiter",
        "Reservation",
    ):
        assert name in spectra_core.__all__
        assert getattr(spectra_core, name) is getattr(rate_limit_module, name)
