"""The Redis limiter beyond the conformance suite: composites in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spectra_core.rate_limit import CompositeRateLimiter, RateLimitRequest
from spectra_core.testing import FakeClock
from spectra_redis import RedisLimiterGroup, RedisRateLimiter


@pytest.fixture
async def limiters(redis_url: str, prefix: str) -> AsyncIterator[list[RedisRateLimiter]]:
    made = [
        RedisRateLimiter(redis_url, 10, 60_000, key_prefix=f"{prefix}:tenant"),
        RedisRateLimiter(redis_url, 3, 60_000, key_prefix=f"{prefix}:user"),
        RedisRateLimiter(redis_url, 100, 60_000, key_prefix=f"{prefix}:global"),
    ]
    yield made
    for limiter in made:
        await limiter.aclose()


def _chain(limiters: list[RedisRateLimiter]) -> CompositeRateLimiter:
    return CompositeRateLimiter(
        [
            {"limiter": limiters[0], "key": "tenant"},
            {"limiter": limiters[1], "key": "user"},
            {"limiter": limiters[2], "key": "global"},
        ]
    )


async def test_a_composite_decides_every_key_in_one_script_call(
    limiters: list[RedisRateLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = RedisLimiterGroup.reserve_all

    async def counted(self: RedisLimiterGroup, parts: object, cost: int) -> object:
        calls.append(len(parts))  # type: ignore[arg-type]
        return await real(self, parts, cost)  # type: ignore[arg-type]

    monkeypatch.setattr(RedisLimiterGroup, "reserve_all", counted)
    composite = _chain(limiters)
    r = await composite.check_limit(RateLimitRequest("u1", tenant_id="acme"))
    assert r.allowed and r.remaining == 2
    assert calls == [3]


async def test_a_rejection_by_one_key_consumes_nothing_anywhere(
    limiters: list[RedisRateLimiter],
) -> None:
    composite = _chain(limiters)
    request = RateLimitRequest("u1", tenant_id="acme")
    results = [await composite.check_limit(request) for _ in range(5)]
    assert [r.allowed for r in results] == [True] * 3 + [False] * 2
    assert results[-1].retry_after > 59
    # the tenant and global keys hold the 3 admissions only
    assert (await limiters[0].check_limit("acme")).remaining == 10 - 4
    assert (await limiters[2].check_limit("global")).remaining == 100 - 4


async def test_concurrent_composite_requests_never_over_admit(
    limiters: list[RedisRateLimiter],
) -> None:
    composite = _chain(limiters)
    requests = [RateLimitRequest(f"u{i % 5}", tenant_id="acme") for i in range(60)]
    results = await asyncio.gather(*(composite.check_limit(r) for r in requests))
    assert sum(r.allowed for r in results) == 10  # the tenant's limit binds first


async def test_composite_reservation_release_gives_every_key_back(
    limiters: list[RedisRateLimiter],
) -> None:
    composite = _chain(limiters)
    request = RateLimitRequest("u1", tenant_id="acme")
    held = await composite.reserve(request, 3)
    assert held.result.allowed
    assert not (await composite.check_limit(request)).allowed
    await held.release()
    assert (await composite.reserve(request, 3)).result.allowed


async def test_limiters_with_other_clocks_are_decided_one_by_one(
    redis_url: str, prefix: str
) -> None:
    a = RedisRateLimiter(redis_url, 2, 1_000, key_prefix=f"{prefix}:a", clock=FakeClock())
    b = RedisRateLimiter(redis_url, 2, 1_000, key_prefix=f"{prefix}:b", clock=FakeClock())
    try:
        assert a.atomic_group() != b.atomic_group()
        composite = CompositeRateLimiter(
            [{"limiter": a, "key": "user"}, {"limiter": b, "key": "global"}]
        )
        assert composite._atomic_group() is None
        assert (await composite.check_limit("u")).allowed
    finally:
        await a.aclose()
        await b.aclose()


async def test_time_comes_from_redis(redis_url: str, prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, 1, 60_000, key_prefix=prefix)
    try:
        (sec, usec) = await limiter.client().time()
        first = await limiter.check_limit("k")
        assert abs(first.reset_at - (sec + usec / 1e6 + 60)) < 5
        second = await limiter.check_limit("k")
        assert not second.allowed and 55 < second.retry_after <= 60
    finally:
        await limiter.aclose()


async def test_concurrent_decisions_share_one_script_call_per_batch(
    redis_url: str, prefix: str
) -> None:
    from spectra_redis._limiter import MAX_BATCH

    limiter = RedisRateLimiter(redis_url, 30, 60_000, key_prefix=prefix)
    try:
        group = limiter.atomic_group()
        assert group is not None
        calls: list[int] = []
        real = group._decide

        async def counted(keys: list[str], args: list[Any]) -> Any:
            calls.append(len(args) - 1)  # requests in this call
            return await real(keys=keys, args=args)

        group._decide = counted  # type: ignore[assignment]
        results = await asyncio.gather(*(limiter.check_limit("k") for _ in range(50)))
        assert calls == [50]
        # decided in the order they were made, exactly
        assert [r.allowed for r in results] == [True] * 30 + [False] * 20
        assert [r.remaining for r in results[:30]] == list(range(29, -1, -1))
        calls.clear()
        many = await asyncio.gather(
            *(limiter.check_limit(f"n{i}") for i in range(MAX_BATCH * 2 + 1))
        )
        assert calls == [MAX_BATCH, MAX_BATCH, 1]
        assert all(r.allowed for r in many)
    finally:
        await limiter.aclose()


async def test_a_decision_cancelled_before_it_is_sent_holds_nothing(
    redis_url: str, prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_url, 1, 60_000, key_prefix=prefix)
    try:
        task = asyncio.create_task(limiter.check_limit("k"))
        await asyncio.sleep(0)  # queued, not sent
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await limiter.check_limit("k")).allowed
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("steps", [2, 3, 4, 6, 10])
async def test_a_decision_cancelled_in_flight_holds_nothing(
    redis_url: str, prefix: str, steps: int
) -> None:
    # cancelled while its batch is in Redis, or after the reply came back but before its
    # caller ran: an admission nobody will use is given back either way
    limiter = RedisRateLimiter(redis_url, 1, 60_000, key_prefix=prefix)
    try:
        task = asyncio.create_task(limiter.reserve("k"))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            held = await task
        except asyncio.CancelledError:
            group = limiter.atomic_group()
            assert group is not None
            await group.settle()
        else:  # it finished before the cancel: the caller has the reservation
            await held.release()
        assert (await limiter.check_limit("k")).allowed
    finally:
        await limiter.aclose()


async def test_a_decision_whose_caller_is_cancelled_after_the_reply_holds_nothing(
    redis_url: str, prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_url, 1, 60_000, key_prefix=prefix)
    try:
        group = limiter.atomic_group()
        assert group is not None
        real = group._decide

        async def then_cancel(keys: list[str], args: list[Any]) -> Any:
            out = await real(keys=keys, args=args)
            # runs after the reply is handed over, before the caller resumes
            asyncio.get_running_loop().call_soon(task.cancel)
            return out

        group._decide = then_cancel  # type: ignore[assignment]
        task = asyncio.create_task(limiter.reserve("k"))
        with pytest.raises(asyncio.CancelledError):
            await task
        group._decide = real
        await group.settle()
        assert (await limiter.check_limit("k")).allowed
    finally:
        await limiter.aclose()
