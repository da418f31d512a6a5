"""The circuit breaker conformance suite against real Redis (time from the test's clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from itertools import count
from typing import Any

import pytest

from spectra_core.testing import CircuitBreakerConformance, FakeClock
from spectra_redis import RedisCircuitBreaker


class TestRedisCircuitBreaker(CircuitBreakerConformance):
    @pytest.fixture
    async def make_breaker(
        self, redis_url: str, prefix: str, clock: FakeClock
    ) -> AsyncIterator[Callable[..., RedisCircuitBreaker]]:
        made = self.made = []
        numbers = count()

        def make(**kwargs: Any) -> RedisCircuitBreaker:
            # every breaker made is a fresh one: its own key prefix
            breaker = RedisCircuitBreaker(
                redis_url, key_prefix=f"{prefix}:{next(numbers)}", clock=clock, **kwargs
            )
            made.append(breaker)
            return breaker

        yield make
        for breaker in made:
            await breaker.aclose()

    made: list[RedisCircuitBreaker]

    async def settle(self) -> None:
        """Let the tasks run, and wait (yielding, never sleeping) until every script call
        of the breakers is answered and nothing new was sent meanwhile."""
        while True:
            await super().settle()
            if not any(b.in_flight for b in self.made):
                return
            while any(b.in_flight for b in self.made):
                await asyncio.sleep(0)
