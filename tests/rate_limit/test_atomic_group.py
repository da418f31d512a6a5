"""CompositeRateLimiter hands a chain whose limiters share an AtomicGroup to that group."""

from __future__ import annotations

from collections.abc import Sequence

from spectra_core.rate_limit import (
    AtomicGroup,
    CompositeRateLimiter,
    LocalRateLimiter,
    RateLimiter,
    RateLimitRequest,
    Reservation,
    combine_results,
)
from spectra_core.testing import FakeClock


class LocalGroup:
    """Local limiters decided together: every reservation is taken without awaiting
    anything in between, so under asyncio the step is atomic."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def reserve_all(self, parts: Sequence[tuple[RateLimiter, str]], cost: int) -> Reservation:
        self.calls.append(len(parts))
        held = [await limiter.reserve(key, cost) for limiter, key in parts]
        result = combine_results([h.result for h in held])
        if not result.allowed:
            for h in held:
                await h.release()
        return _Held(result, held if result.allowed else [])


class _Held:
    def __init__(self, result: object, parts: list[Reservation]) -> None:
        self.result = result
        self._parts = parts

    async def commit(self) -> None:
        self._parts = []

    async def release(self) -> None:
        parts, self._parts = self._parts, []
        for part in parts:
            await part.release()


class Grouped(LocalRateLimiter):
    group: LocalGroup | None = None

    def atomic_group(self) -> LocalGroup | None:
        return self.group


def _chain(group_a: LocalGroup | None, group_b: LocalGroup | None) -> CompositeRateLimiter:
    clock = FakeClock()
    a, b = Grouped(5, 60_000, clock=clock), Grouped(2, 60_000, clock=clock)
    a.group, b.group = group_a, group_b
    return CompositeRateLimiter([{"limiter": a, "key": "tenant"}, {"limiter": b, "key": "user"}])


def test_the_protocol_is_runtime_checkable() -> None:
    assert isinstance(LocalGroup(), AtomicGroup)


async def test_a_shared_group_decides_the_chain_in_one_call() -> None:
    group = LocalGroup()
    chain = _chain(group, group)
    request = RateLimitRequest("u", tenant_id="t")
    results = [await chain.check_limit(request) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert group.calls == [2, 2, 2]
    held = await chain.reserve(RateLimitRequest("v", tenant_id="t"))
    assert held.result.allowed and held.result.remaining == 1  # tenant: 5 - 2 - 1 - 1
    await held.release()
    assert (await chain.check_limit(RateLimitRequest("v", tenant_id="t"))).remaining == 1


async def test_different_or_missing_groups_fall_back_to_one_by_one() -> None:
    first, second = LocalGroup(), LocalGroup()
    for chain in (_chain(first, second), _chain(first, None)):
        assert (await chain.check_limit(RateLimitRequest("u", tenant_id="t"))).allowed
    assert first.calls == [] and second.calls == []
