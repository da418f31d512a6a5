"""Several RedisCircuitBreaker instances sharing one state, against the reference model
of spectra_core.testing.breaker_model (hypothesis, step by step, real Redis)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence

import pytest
from _redis_env import REQUIRED, URL, WHY_NOT
from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant

from spectra_core import CircuitBreaker, CircuitState
from spectra_core.testing.breaker_model import BreakerConfig, BreakerMachine
from spectra_redis import RedisCircuitBreaker

INSTANCES = 3
HALF_OPEN = CircuitState.HALF_OPEN


class SharedBreakerMachine(BreakerMachine):
    wait_tolerance = 1e-6  # Redis counts in microseconds

    def make_breakers(self, config: BreakerConfig) -> Sequence[CircuitBreaker]:
        prefix = f"spectra-test-{uuid.uuid4().hex[:12]}"
        self.shared = [
            RedisCircuitBreaker(URL, key_prefix=prefix, clock=self.clock, **config.kwargs())
            for _ in range(INSTANCES)
        ]
        return self.shared

    async def close(self) -> None:
        shared: list[RedisCircuitBreaker] = getattr(self, "shared", [])
        if shared:
            await shared[0].client().delete(shared[0]._key)
        for b in shared:
            await b.aclose()

    def settle(self) -> None:
        for _ in range(3):
            self.run(asyncio.sleep(0))
        while any(b.in_flight for b in getattr(self, "shared", [])):
            self.run(asyncio.sleep(0))
        for _ in range(3):
            self.run(asyncio.sleep(0))

    def reset_breaker(self, breaker: CircuitBreaker) -> None:
        async def reset() -> None:  # from async code, as an application would
            breaker.reset()

        self.run(reset())
        self.settle()

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def every_instance_sees_the_model_state(self) -> None:
        if not self.breakers:
            return
        now = self.clock.monotonic()
        self.model.tick(now)
        for b in self.shared:
            assert self.run(b.refresh()) is self.model.state
            assert b.retry_after == pytest.approx(self.model.retry_after(now), abs=1e-6)
            metrics = b.metrics()
            assert metrics.consecutive_failures == self.model.consecutive
            if self.model.state is HALF_OPEN:
                assert metrics.half_open_in_flight == self.model.in_flight
                assert self.model.in_flight <= self.config.permits
            else:
                assert metrics.half_open_in_flight == 0


SharedBreakerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SPECTRA_BREAKER_EXAMPLES", "40")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestSharedBreakerMachine(SharedBreakerMachine.TestCase):
    def setUp(self) -> None:
        if WHY_NOT is not None:
            if REQUIRED:
                pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {WHY_NOT}")
            pytest.skip(WHY_NOT)
