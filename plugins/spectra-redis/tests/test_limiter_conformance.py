"""The rate limiter conformance suite against real Redis (time from the test's clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from spectra_core.testing import FakeClock, RateLimiterConformance
from spectra_redis import RedisRateLimiter


class TestRedisRateLimiter(RateLimiterConformance):
    @pytest.fixture
    async def make_limiter(
        self, redis_url: str, prefix: str, clock: FakeClock
    ) -> AsyncIterator[Callable[..., RedisRateLimiter]]:
        made: list[RedisRateLimiter] = []

        def make(
            requests_per_window: int, window_ms: float, burst_allowance: int = 0
        ) -> RedisRateLimiter:
            limiter = RedisRateLimiter(
                redis_url,
                requests_per_window,
                window_ms,
                key_prefix=f"{prefix}:rl",
                burst_allowance=burst_allowance,
                clock=clock,
            )
            made.append(limiter)
            return limiter

        yield make
        for limiter in made:
            await limiter.aclose()
