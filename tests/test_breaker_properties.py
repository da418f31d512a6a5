"""DefaultCircuitBreaker against a small reference model, step by step (hypothesis)."""

from __future__ import annotations

import asyncio
from collections import deque
from fractions import Fraction
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spectra_core import CircuitOpenError, CircuitState, DefaultCircuitBreaker
from spectra_core.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

# Every duration is a multiple of 1/4 s, so clock arithmetic is exact.
SLOW_CALL = 0.5
OUTCOMES = ["success", "failure", "excluded", "slow"]
ENDINGS = ["success", "failure", "excluded", "cancel"]


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


@attrs.frozen
class Config:
    failure_threshold: int
    reset: float
    permits: int
    failure_rate: int | None
    window: int
    minimum: int
    slow: float | None
    slow_rate: int
    max_half_open: float | None

    def kwargs(self) -> dict[str, Any]:
        ms = lambda s: None if s is None else s * 1000  # noqa: E731
        return {
            "failure_threshold": self.failure_threshold,
            "reset_timeout_ms": self.reset * 1000,
            "half_open_max_requests": self.permits,
            "failure_rate_threshold": self.failure_rate,
            "sliding_window_size": self.window,
            "minimum_number_of_calls": self.minimum,
            "slow_call_duration_ms": ms(self.slow),
            "slow_call_rate_threshold": self.slow_rate,
            "max_half_open_ms": ms(self.max_half_open),
            "excluded_exceptions": (Ignored,),
        }


configs = st.builds(
    Config,
    failure_threshold=st.integers(1, 4),
    reset=st.sampled_from([0.25, 0.5, 1.0]),
    permits=st.integers(1, 3),
    failure_rate=st.none() | st.sampled_from([25, 50, 75, 100]),
    window=st.integers(1, 5),
    minimum=st.integers(1, 6),
    slow=st.none() | st.just(0.25),
    slow_rate=st.sampled_from([25, 50, 100]),
    max_half_open=st.none() | st.sampled_from([0.25, 0.75]),
)


class Model:
    """The breaker's documented rules, written plainly."""

    def __init__(self, c: Config) -> None:
        self.c = c
        self.state = CLOSED
        self.epoch = 0
        self.opened_at = 0.0
        self.half_open_at = 0.0
        self._clear()

    def _clear(self) -> None:
        self.consecutive = 0
        self.window: deque[tuple[bool, bool]] = deque(maxlen=self.c.window)
        self.in_flight = 0
        self.successes = 0
        self.slow_successes = 0

    def go(self, state: CircuitState, at: float) -> None:
        self.state = state
        self.epoch += 1
        self._clear()
        if state is OPEN:
            self.opened_at = at
        elif state is HALF_OPEN:
            self.half_open_at = at

    def tick(self, now: float) -> None:
        while True:
            if self.state is OPEN and now >= self.opened_at + self.c.reset:
                self.go(HALF_OPEN, now)
            elif (
                self.state is HALF_OPEN
                and self.c.max_half_open is not None
                and now >= self.half_open_at + self.c.max_half_open
            ):
                self.go(OPEN, self.half_open_at + self.c.max_half_open)
            else:
                return

    def full(self) -> bool:
        return self.in_flight + self.successes >= self.c.permits

    def admit(self, now: float) -> int | None:
        self.tick(now)
        if self.state is CLOSED:
            return self.epoch
        if self.state is HALF_OPEN and not self.full():
            self.in_flight += 1
            return self.epoch
        return None

    def retry_after(self, now: float) -> float:
        self.tick(now)
        if self.state is OPEN:
            return self.opened_at + self.c.reset - now
        if self.state is HALF_OPEN and self.full():
            if self.c.max_half_open is not None:
                return self.half_open_at + self.c.max_half_open - now
            return self.c.reset
        return 0.0

    def finish(self, epoch: int, ending: str, duration: float, now: float) -> None:
        self.tick(now)
        if epoch != self.epoch:
            return  # admitted before the latest state change
        failed = ending == "failure"
        slow = self.c.slow is not None and duration > self.c.slow
        if ending in ("excluded", "cancel"):
            if self.state is HALF_OPEN:
                self.in_flight -= 1
            return
        if self.state is HALF_OPEN:
            self.in_flight -= 1
            if failed:
                self.go(OPEN, now)
                return
            self.successes += 1
            self.slow_successes += slow
            if self.successes == self.c.permits:
                too_slow = self.c.slow is not None and (
                    Fraction(self.slow_successes, self.successes) * 100 >= self.c.slow_rate
                )
                self.go(OPEN if too_slow else CLOSED, now)
            return
        self.consecutive = self.consecutive + 1 if failed else 0
        if self.consecutive >= self.c.failure_threshold:
            self.go(OPEN, now)
            return
        if self.c.failure_rate is None and self.c.slow is None:
            return
        self.window.append((failed, slow))
        n = len(self.window)
        if n < min(self.c.minimum, self.c.window):
            return
        failure_rate = Fraction(sum(f for f, _ in self.window), n) * 100
        slow_rate = Fraction(sum(s for _, s in self.window), n) * 100
        if (self.c.failure_rate is not None and failure_rate >= self.c.failure_rate) or (
            self.c.slow is not None and slow_rate >= self.c.slow_rate
        ):
            self.go(OPEN, now)


@attrs.define
class InFlight:
    task: asyncio.Task[Any]
    gate: asyncio.Future[None]
    epoch: int
    started: float


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.in_flight: list[InFlight] = []
        self.entered = 0

    @initialize(config=configs)
    def setup(self, config: Config) -> None:
        self.config = config
        self.model = Model(config)
        self.breaker = DefaultCircuitBreaker(clock=self.clock, **config.kwargs())

    def teardown(self) -> None:
        for f in self.in_flight:
            f.task.cancel()
        if self.in_flight:
            self.loop.run_until_complete(
                asyncio.gather(*(f.task for f in self.in_flight), return_exceptions=True)
            )
        self.loop.close()

    def _run(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    def _settle(self) -> None:
        for _ in range(3):
            self._run(asyncio.sleep(0))

    # --- rules ------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(outcome=st.sampled_from(OUTCOMES))
    def call(self, outcome: str) -> None:
        now = self.clock.monotonic()
        expected_wait = self.model.retry_after(now)
        epoch = self.model.admit(now)
        entered = False

        async def fn() -> str:
            nonlocal entered
            entered = True
            if outcome == "failure":
                raise Boom
            if outcome == "excluded":
                raise Ignored
            if outcome == "slow":
                self.clock.advance(SLOW_CALL)
            return "ok"

        async def attempt() -> object:
            try:
                return await self.breaker.call(fn)
            except Exception as exc:
                return exc

        result = self._run(attempt())
        if epoch is None:
            assert not entered, "the function ran while the breaker rejects calls"
            assert isinstance(result, CircuitOpenError)
            assert result.retry_after == expected_wait
            return
        assert entered
        expected: type[object] = {"failure": Boom, "excluded": Ignored}.get(outcome, str)
        assert isinstance(result, expected)
        duration = SLOW_CALL if outcome == "slow" else 0.0
        ending = "success" if outcome == "slow" else outcome
        self.model.finish(epoch, ending, duration, now + duration)

    @rule()
    def start(self) -> None:
        now = self.clock.monotonic()
        epoch = self.model.admit(now)
        gate: asyncio.Future[None] = self.loop.create_future()
        before = self.entered

        async def held() -> None:
            self.entered += 1
            await gate

        task = self.loop.create_task(self.breaker.call(held))
        self._settle()
        if epoch is None:
            assert self.entered == before, "the function ran while the breaker rejects calls"
            assert task.done() and isinstance(task.exception(), CircuitOpenError)
            return
        assert self.entered == before + 1 and not task.done()
        self.in_flight.append(InFlight(task, gate, epoch, now))

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 20), ending=st.sampled_from(ENDINGS))
    def finish(self, index: int, ending: str) -> None:
        f = self.in_flight.pop(index % len(self.in_flight))
        if ending == "cancel":
            f.task.cancel()
        elif ending == "success":
            f.gate.set_result(None)
        else:
            f.gate.set_exception(Boom() if ending == "failure" else Ignored())
        self._run(asyncio.wait([f.task]))
        if ending == "cancel":
            assert f.task.cancelled()
        elif ending == "success":
            assert f.task.result() is None
        else:
            assert isinstance(f.task.exception(), Boom if ending == "failure" else Ignored)
        now = self.clock.monotonic()
        self.model.finish(f.epoch, ending, now - f.started, now)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        if self.model.state is CLOSED:
            self.model.epoch += 1
            self.model._clear()
        else:
            self.model.go(CLOSED, self.clock.monotonic())

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


BreakerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerMachine = BreakerMachine.TestCase
