"""The rate limiter conformance suite.

Subclass it in a plugin's tests and provide a ``make_limiter`` fixture: a factory
``make_limiter(requests_per_window, window_ms, burst_allowance=0)`` returning a fresh
limiter with no admissions that reads time from the ``clock`` fixture (a
:class:`~spectra_core.testing.FakeClock`)::

    class TestMyLimiter(RateLimiterConformance):
        @pytest.fixture
        def make_limiter(self, clock):
            def make(requests_per_window, window_ms, burst_allowance=0):
                return MyLimiter(requests_per_window, window_ms, burst_allowance, clock=clock)
            return make

Only the public contract is tested. A backend may round ``retry_after`` up to its time
resolution, by at most :attr:`RateLimiterConformance.resolution` seconds (default 1 ms).
Requires pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from ..errors import InvalidArgumentError
from ..rate_limit import RateLimiter, RateLimitResult
from .clock import FakeClock

__all__ = ["MakeLimiter", "RateLimiterConformance"]

#: ``make_limiter(requests_per_window, window_ms, burst_allowance=0) -> RateLimiter``
MakeLimiter = Callable[..., RateLimiter]


class RateLimiterConformance:
    """The behaviour every rate limiter must show. See the module docstring."""

    pytestmark = pytest.mark.asyncio

    #: How far (seconds) a backend may round ``retry_after`` up.
    resolution: float = 0.001

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    async def _admit(self, limiter: RateLimiter, key: str, n: int, cost: int = 1) -> None:
        for i in range(n):
            r = await limiter.check_limit(key, cost)
            assert r.allowed, f"request {i + 1} of {n} on {key!r} was rejected: {r}"

    # --- exact admission ------------------------------------------------------------

    async def test_admits_exactly_the_limit_then_rejects(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(5, 60_000)
        results = [await limiter.check_limit("k") for _ in range(8)]
        assert [r.allowed for r in results] == [True] * 5 + [False] * 3
        assert [r.remaining for r in results[:5]] == [4, 3, 2, 1, 0]
        assert all(r.remaining == 0 for r in results[5:])

    async def test_allowed_result_has_no_wait(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        r = await make_limiter(2, 10_000).check_limit("k")
        assert isinstance(r, RateLimitResult)
        assert (r.allowed, r.remaining, r.retry_after) == (True, 1, 0.0)
        assert r.reset_at == pytest.approx(clock.time() + 10.0, abs=self.resolution)

    async def test_burst_allowance_adds_to_the_limit(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(3, 60_000, 2)
        results = [await limiter.check_limit("k") for _ in range(6)]
        assert [r.allowed for r in results] == [True] * 5 + [False]
        assert results[0].remaining == 4

    async def test_cost_counts_against_the_limit(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(10, 60_000)
        r = await limiter.check_limit("k", 7)
        assert (r.allowed, r.remaining) == (True, 3)
        r = await limiter.check_limit("k", 4)
        assert (r.allowed, r.remaining) == (False, 3)
        r = await limiter.check_limit("k", 3)
        assert (r.allowed, r.remaining) == (True, 0)

    async def test_keys_are_independent(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(2, 60_000)
        await self._admit(limiter, "a", 2)
        assert not (await limiter.check_limit("a")).allowed
        await self._admit(limiter, "b", 2)
        assert not (await limiter.check_limit("b")).allowed

    # --- rejections consume nothing --------------------------------------------------

    async def test_rejections_consume_nothing(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(3, 1_000)
        await self._admit(limiter, "k", 3)
        first = await limiter.check_limit("k")
        for _ in range(50):
            clock.advance(0.01)
            r = await limiter.check_limit("k")
            assert not r.allowed
        # Had the rejections counted, the window would still be full after the first expired.
        clock.advance(first.retry_after - 0.5)
        await self._admit(limiter, "k", 3)
        assert not (await limiter.check_limit("k")).allowed

    async def test_a_rejected_large_cost_consumes_nothing(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(5, 60_000)
        await self._admit(limiter, "k", 1, cost=3)
        r = await limiter.check_limit("k", 3)
        assert (r.allowed, r.remaining) == (False, 2)
        await self._admit(limiter, "k", 1, cost=2)

    async def test_cost_above_the_limit_never_passes(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(3, 1_000, 1)
        r = await limiter.check_limit("k", 5)
        assert not r.allowed
        assert r.retry_after == math.inf
        assert r.remaining == 4
        clock.advance(3600)
        assert (await limiter.check_limit("k", 5)).retry_after == math.inf
        await self._admit(limiter, "k", 1, cost=4)

    @pytest.mark.parametrize("cost", [0, -1, 1.5, "1", True, None])
    async def test_bad_cost_is_an_error(self, make_limiter: MakeLimiter, cost: Any) -> None:
        limiter = make_limiter(3, 1_000)
        with pytest.raises(InvalidArgumentError, match="cost"):
            await limiter.check_limit("k", cost)
        with pytest.raises(InvalidArgumentError, match="cost"):
            await limiter.reserve("k", cost)
        await self._admit(limiter, "k", 3)

    @pytest.mark.parametrize(
        ("requests_per_window", "window_ms", "burst_allowance"),
        [(0, 1_000, 0), (-1, 1_000, 0), (1, 0, 0), (1, -5, 0), (1, 1_000, -1)],
    )
    async def test_bad_limits_are_rejected_at_construction(
        self,
        make_limiter: MakeLimiter,
        requests_per_window: int,
        window_ms: int,
        burst_allowance: int,
    ) -> None:
        with pytest.raises(ValueError, match=r"requests_per_window|window|burst_allowance"):
            make_limiter(requests_per_window, window_ms, burst_allowance)

    # --- retry_after and the sliding window -----------------------------------------

    async def test_retry_after_is_the_earliest_moment_the_request_passes(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(2, 1_000)
        await self._admit(limiter, "k", 1)
        clock.advance(0.3)
        await self._admit(limiter, "k", 1)
        clock.advance(0.1)
        r = await limiter.check_limit("k")
        assert not r.allowed
        assert r.retry_after == pytest.approx(0.6, abs=self.resolution)
        clock.advance(r.retry_after - 2 * self.resolution)
        assert not (await limiter.check_limit("k")).allowed
        clock.advance(2 * self.resolution)
        await self._admit(limiter, "k", 1)
        # The second admission (at 0.3 s) now blocks until it leaves the window at 1.3 s.
        r = await limiter.check_limit("k")
        assert r.retry_after == pytest.approx(0.3, abs=self.resolution)

    async def test_retry_after_of_a_costly_request_waits_for_enough_to_expire(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(5, 1_000)
        await self._admit(limiter, "k", 1, cost=2)  # t=0.0
        clock.advance(0.1)
        await self._admit(limiter, "k", 1, cost=2)  # t=0.1
        clock.advance(0.1)
        await self._admit(limiter, "k", 1, cost=1)  # t=0.2
        r = await limiter.check_limit("k", 3)  # needs the entries of 0.0 and 0.1 to expire
        assert not r.allowed
        assert r.retry_after == pytest.approx(0.9, abs=self.resolution)
        clock.advance(r.retry_after - 2 * self.resolution)
        assert not (await limiter.check_limit("k", 3)).allowed
        clock.advance(2 * self.resolution)
        r = await limiter.check_limit("k", 3)
        assert (r.allowed, r.remaining) == (True, 1)

    async def test_advancing_by_retry_after_is_enough(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(3, 777)
        for step in (0.013, 0.1, 0.2999, 0.05, 0.4, 0.0001, 0.33):
            clock.advance(step)
            r = await limiter.check_limit("k")
            if not r.allowed:
                clock.advance(r.retry_after)
                assert (await limiter.check_limit("k")).allowed

    async def test_window_edges(self, make_limiter: MakeLimiter, clock: FakeClock) -> None:
        limiter = make_limiter(2, 1_000)
        await self._admit(limiter, "k", 2)  # t=0
        clock.advance(0.999)
        assert not (await limiter.check_limit("k")).allowed
        clock.advance(0.001)  # t=1.0: the admissions of t=0 leave the window
        await self._admit(limiter, "k", 2)
        assert not (await limiter.check_limit("k")).allowed

    async def test_no_window_ever_admits_more_than_the_limit(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(4, 1_000, 1)
        admitted: list[float] = []
        for _ in range(400):
            if (await limiter.check_limit("k")).allowed:
                admitted.append(clock.monotonic())
            clock.advance(0.037)
        assert len(admitted) > 5 * 14
        for i, start in enumerate(admitted):
            in_window = [t for t in admitted[i:] if t < start + 1.0 - 1e-9]
            assert len(in_window) <= 5, (start, in_window)

    async def test_reset_at_is_when_all_quota_in_use_is_free(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(3, 2_000)
        t0 = clock.time()
        await self._admit(limiter, "k", 1)
        clock.advance(0.5)
        r = await limiter.check_limit("k")
        assert r.reset_at == pytest.approx(t0 + 2.5, abs=self.resolution)
        await self._admit(limiter, "k", 1)
        r = await limiter.check_limit("k")
        assert not r.allowed
        assert r.reset_at == pytest.approx(t0 + 2.5, abs=self.resolution)
        clock.advance(r.reset_at - clock.time() + self.resolution)
        results = [await limiter.check_limit("k") for _ in range(3)]
        assert [x.allowed for x in results] == [True] * 3
        assert results[0].remaining == 2

    # --- reserve / commit / release -------------------------------------------------

    async def test_reservation_holds_until_released(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(3, 60_000)
        reservation = await limiter.reserve("k", 2)
        assert reservation.result.allowed
        assert reservation.result.remaining == 1
        assert not (await limiter.check_limit("k", 2)).allowed
        await reservation.release()
        await reservation.release()  # settling twice has no further effect
        await reservation.commit()
        r = await limiter.check_limit("k", 3)
        assert (r.allowed, r.remaining) == (True, 0)

    async def test_committed_reservation_stays_consumed(self, make_limiter: MakeLimiter) -> None:
        limiter = make_limiter(3, 60_000)
        reservation = await limiter.reserve("k", 2)
        await reservation.commit()
        await reservation.release()  # after commit, release does nothing
        r = await limiter.check_limit("k", 2)
        assert (r.allowed, r.remaining) == (False, 1)

    async def test_rejected_reservation_holds_nothing(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(2, 1_000)
        await self._admit(limiter, "k", 1)
        reservation = await limiter.reserve("k", 2)
        assert not reservation.result.allowed
        assert reservation.result.retry_after == pytest.approx(1.0, abs=self.resolution)
        await reservation.release()
        await reservation.commit()
        r = await limiter.check_limit("k")
        assert (r.allowed, r.remaining) == (True, 0)

    async def test_release_after_the_window_changes_nothing(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(2, 1_000)
        reservation = await limiter.reserve("k", 2)
        clock.advance(1.0)
        await self._admit(limiter, "k", 1, cost=2)
        await reservation.release()
        assert not (await limiter.check_limit("k")).allowed

    async def test_release_is_exact_among_other_admissions(
        self, make_limiter: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make_limiter(4, 1_000)
        await self._admit(limiter, "k", 1)  # t=0
        clock.advance(0.2)
        reservation = await limiter.reserve("k", 2)  # t=0.2
        clock.advance(0.2)
        await self._admit(limiter, "k", 1)  # t=0.4
        await reservation.release()
        r = await limiter.check_limit("k", 2)
        assert (r.allowed, r.remaining) == (True, 0)
        r = await limiter.check_limit("k")
        assert r.retry_after == pytest.approx(0.6, abs=self.resolution)

    # --- concurrency ----------------------------------------------------------------

    async def test_concurrent_checks_admit_exactly_the_limit(
        self, make_limiter: MakeLimiter
    ) -> None:
        limiter = make_limiter(37, 60_000, 3)
        results = await asyncio.gather(*(limiter.check_limit("k") for _ in range(1_000)))
        assert sum(r.allowed for r in results) == 40
        assert sorted(r.remaining for r in results if r.allowed) == list(range(40))

    async def test_concurrent_reservations_never_over_admit(
        self, make_limiter: MakeLimiter
    ) -> None:
        limiter = make_limiter(10, 60_000)

        async def reserve_then_settle(i: int) -> bool:
            reservation = await limiter.reserve("k")
            await asyncio.sleep(0)
            if i % 2:
                await reservation.release()
                return False
            await reservation.commit()
            return reservation.result.allowed

        committed = await asyncio.gather(*(reserve_then_settle(i) for i in range(200)))
        kept = sum(committed)
        assert 1 <= kept <= 10
        results = await asyncio.gather(*(limiter.check_limit("k") for _ in range(50)))
        assert sum(r.allowed for r in results) == 10 - kept
