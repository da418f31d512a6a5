"""DefaultCircuitBreaker against a small reference model, step by step (hypothesis).

The model and the rules are :mod:`spectra_core.testing.breaker_model`'s, which the
shared Redis breaker's test drives too.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant

from spectra_core import CircuitBreaker, CircuitState, DefaultCircuitBreaker
from spectra_core.testing.breaker_model import BreakerConfig, BreakerMachine

HALF_OPEN = CircuitState.HALF_OPEN


class DefaultBreakerMachine(BreakerMachine):
    def make_breakers(self, config: BreakerConfig) -> Sequence[CircuitBreaker]:
        self.breaker = DefaultCircuitBreaker(clock=self.clock, **config.kwargs())
        return [self.breaker]

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def state_matches_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        now = self.clock.monotonic()
        self.model.tick(now)
        assert self.breaker.state is self.model.state
        assert self.breaker.retry_after == self.model.retry_after(now)

    @invariant()
    def probes_in_flight_never_exceed_the_permits(self) -> None:
        if not hasattr(self, "model"):
            return
        self.model.tick(self.clock.monotonic())
        metrics = self.breaker.metrics()
        probes = sum(1 for f in self.in_flight if f.epoch == self.model.epoch)
        if self.model.state is HALF_OPEN:
            assert probes == self.model.in_flight == metrics.half_open_in_flight
            assert probes <= self.config.permits
        else:
            assert metrics.half_open_in_flight == 0
        assert metrics.consecutive_failures == self.model.consecutive


DefaultBreakerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerMachine = DefaultBreakerMachine.TestCase
