"""A hypothesis state machine driving circuit breakers against a small reference model.

:class:`BreakerModel` is the breaker's documented rules written plainly (exact
fractions for the rates); :class:`BreakerMachine` calls, holds, finishes and resets
calls on one or several breakers that share one state, on a :class:`FakeClock`, and
checks every admission, rejection and ``retry_after`` against the model. A backend's
test subclasses it, says how to build its breakers (:meth:`BreakerMachine.make_breakers`)
and adds the invariants it can check::

    class MyMachine(BreakerMachine):
        def make_breakers(self, config):
            return [MyBreaker(clock=self.clock, **config.kwargs())]

        @invariant()
        def state_matches_the_model(self):
            ...

    TestMyMachine = MyMachine.TestCase

Every duration is a multiple of 1/4 s, so clock arithmetic is exact. Requires hypothesis.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from ..breaker import CircuitBreaker, CircuitState
from ..errors import CircuitOpenError
from .clock import FakeClock

__all__ = [
    "ENDINGS",
    "OUTCOMES",
    "SLOW_CALL",
    "Boom",
    "BreakerConfig",
    "BreakerMachine",
    "BreakerModel",
    "Ignored",
    "InFlight",
    "breaker_configs",
]

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

#: How long a "slow" call takes (seconds); the configs' slow-call duration is 0.25 s.
SLOW_CALL = 0.5
#: How a call made and awaited at once ends.
OUTCOMES = ["success", "failure", "excluded", "slow"]
#: How a held call ends.
ENDINGS = ["success", "failure", "excluded", "cancel"]


class Boom(Exception):
    """The failure of a protected call."""


class Ignored(Exception):
    """An exception the breakers are told to exclude."""


@attrs.frozen
class BreakerConfig:
    """One breaker configuration, in seconds; :meth:`kwargs` gives the constructor's."""

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
        """The keyword arguments of :class:`~spectra_core.DefaultCircuitBreaker`."""

        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else seconds * 1000

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


breaker_configs = st.builds(
    BreakerConfig,
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


class BreakerModel:
    """The breaker's documented rules, written plainly."""

    def __init__(self, c: BreakerConfig) -> None:
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

    def reset(self, now: float) -> None:
        """What ``breaker.reset()`` does."""
        if self.state is CLOSED:
            self.epoch += 1
            self._clear()
        else:
            self.go(CLOSED, now)

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
    """A held call: its task, the future that ends it, its epoch and start time."""

    task: asyncio.Task[Any]
    gate: asyncio.Future[None]
    epoch: int
    started: float


class BreakerMachine(RuleBasedStateMachine):
    """Calls on :attr:`breakers` (all sharing one state) checked against the model.

    Override :meth:`make_breakers`; a breaker that decides over the network also
    overrides :meth:`settle`, :meth:`reset_breaker` and :meth:`close`, and sets
    :attr:`wait_tolerance` (seconds) when its ``retry_after`` is computed from a
    clock of finer or coarser grain.
    """

    #: How far a rejection's ``retry_after`` may be from the model's (0: exactly equal).
    wait_tolerance: ClassVar[float] = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.in_flight: list[InFlight] = []
        self.entered = 0
        self.breakers: Sequence[CircuitBreaker] = []

    # --- hooks ------------------------------------------------------------------------

    def make_breakers(self, config: BreakerConfig) -> Sequence[CircuitBreaker]:
        """The breakers under test, sharing one state, with time from :attr:`clock`."""
        raise NotImplementedError("override make_breakers (see the module docstring)")

    def settle(self) -> None:
        """Let every ready task run until it blocks."""
        for _ in range(3):
            self.run(asyncio.sleep(0))

    def reset_breaker(self, breaker: CircuitBreaker) -> None:
        breaker.reset()

    async def close(self) -> None:
        """Release the breakers (after the held calls are cancelled)."""

    # --- plumbing ---------------------------------------------------------------------

    @initialize(config=breaker_configs)
    def setup(self, config: BreakerConfig) -> None:
        self.config = config
        self.model = BreakerModel(config)
        self.breakers = list(self.make_breakers(config))

    def teardown(self) -> None:
        for f in self.in_flight:
            f.task.cancel()
        if self.in_flight:
            self.run(asyncio.gather(*(f.task for f in self.in_flight), return_exceptions=True))
        self.run(self.close())
        self.loop.close()

    def run(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    def _same_wait(self, actual: float, expected: float) -> bool:
        if self.wait_tolerance == 0:
            return actual == expected
        return actual == pytest.approx(expected, abs=self.wait_tolerance)

    def _pick(self, data: st.DataObject) -> CircuitBreaker:
        return self.breakers[data.draw(st.integers(0, len(self.breakers) - 1), label="which")]

    # --- rules ------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def call(self, data: st.DataObject, outcome: str) -> None:
        breaker = self._pick(data)
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
                return await breaker.call(fn)
            except Exception as exc:
                return exc

        result = self.run(attempt())
        if epoch is None:
            assert not entered, "the function ran while the breaker rejects calls"
            assert isinstance(result, CircuitOpenError)
            assert self._same_wait(result.retry_after, expected_wait), (
                result.retry_after,
                expected_wait,
            )
            return
        assert entered
        expected: type[object] = {"failure": Boom, "excluded": Ignored}.get(outcome, str)
        assert isinstance(result, expected)
        duration = SLOW_CALL if outcome == "slow" else 0.0
        ending = "success" if outcome == "slow" else outcome
        self.model.finish(epoch, ending, duration, now + duration)

    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        breaker = self._pick(data)
        now = self.clock.monotonic()
        epoch = self.model.admit(now)
        gate: asyncio.Future[None] = self.loop.create_future()
        before = self.entered

        async def held() -> None:
            self.entered += 1
            await gate

        task = self.loop.create_task(breaker.call(held))
        self.settle()
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
        self.run(asyncio.wait([f.task]))
        if ending == "cancel":
            assert f.task.cancelled()
        elif ending == "success":
            assert f.task.result() is None
        else:
            assert isinstance(f.task.exception(), Boom if ending == "failure" else Ignored)
        now = self.clock.monotonic()
        self.model.finish(f.epoch, ending, now - f.started, now)

    @rule(data=st.data())
    def reset(self, data: st.DataObject) -> None:
        self.reset_breaker(self._pick(data))
        self.model.reset(self.clock.monotonic())
