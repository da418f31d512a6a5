"""The circuit breaker conformance suite.

Subclass it in a plugin's tests and provide a ``make_breaker`` fixture: a callable taking
the keyword arguments of :class:`~spectra_core.DefaultCircuitBreaker` (``failure_threshold``,
``reset_timeout_ms``, ``half_open_max_requests``, ``excluded_exceptions``,
``failure_rate_threshold``, ``sliding_window_size``, ``minimum_number_of_calls``,
``slow_call_duration_ms``, ``slow_call_rate_threshold``, ``max_half_open_ms``, ``name``)
and returning a fresh breaker whose time comes from the ``clock`` fixture::

    class TestMyBreaker(CircuitBreakerConformance):
        @pytest.fixture
        def make_breaker(self, clock):
            return lambda **kwargs: MyBreaker(clock=clock, **kwargs)

Only the public contract is exercised. A breaker that decides over the network also
overrides :meth:`CircuitBreakerConformance.settle` (see there). Requires pytest-asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ..breaker import CircuitBreaker, CircuitState
from ..errors import CircuitOpenError, InvalidArgumentError, SpectraError
from .clock import FakeClock

__all__ = ["CircuitBreakerConformance"]

MakeBreaker = Callable[..., CircuitBreaker]

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Boom(Exception):
    """The failure the protected functions raise."""


class Ignored(Exception):
    """An exception the breakers under test are told to exclude."""


async def _fail() -> None:
    raise Boom("service down")


async def _ok(value: object = "ok") -> object:
    return value


async def _settle() -> None:
    """Let every ready task run until it blocks."""
    for _ in range(5):
        await asyncio.sleep(0)


class Gate:
    """A protected function that blocks until told how to finish; counts its calls."""

    def __init__(self) -> None:
        self.entered = 0
        self._release = asyncio.Event()
        self._error: BaseException | None = None

    async def __call__(self) -> str:
        self.entered += 1
        await self._release.wait()
        if self._error is not None:
            raise self._error
        return "done"

    def succeed(self) -> None:
        self._release.set()

    def fail(self, error: BaseException | None = None) -> None:
        self._error = error or Boom("probe failed")
        self._release.set()


async def _trip(breaker: CircuitBreaker, failures: int) -> None:
    for _ in range(failures):
        with pytest.raises(Boom):
            await breaker.call(_fail)


class CircuitBreakerConformance:
    """The behaviour every circuit breaker must show. See the module docstring."""

    pytestmark = pytest.mark.asyncio

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def make_breaker(self, clock: FakeClock) -> MakeBreaker:
        raise NotImplementedError("provide a make_breaker fixture (see the module docstring)")

    async def settle(self) -> None:
        """Let every ready task run until it blocks on something other than the breaker.

        A breaker that decides over the network overrides this to also wait until its
        requests in flight are answered (yielding to the loop, never sleeping), so that
        "the call was admitted" or "rejected" has happened when the test looks.
        """
        await _settle()

    async def _half_open(
        self, make_breaker: MakeBreaker, clock: FakeClock, **kwargs: Any
    ) -> CircuitBreaker:
        kwargs.setdefault("failure_threshold", 1)
        kwargs.setdefault("reset_timeout_ms", 1000)
        breaker = make_breaker(**kwargs)
        await _trip(breaker, kwargs["failure_threshold"])
        clock.advance(kwargs["reset_timeout_ms"] / 1000)
        assert breaker.state is HALF_OPEN
        return breaker

    # --- closed -----------------------------------------------------------------------

    async def test_closed_passes_calls_through(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(name="payments")
        seen: list[object] = []

        async def fn(a: int, *, b: int) -> int:
            seen.append((a, b))
            return a + b

        assert breaker.name == "payments"
        assert breaker.state is CLOSED
        assert breaker.retry_after == 0.0
        assert await breaker.call(fn, 1, b=2) == 3
        assert seen == [(1, 2)]
        assert isinstance(breaker, CircuitBreaker)

    async def test_plain_callables_are_supported(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=1)
        assert await breaker.call(lambda x: x * 2, 21) == 42

        def broken() -> None:
            raise Boom("sync failure")

        with pytest.raises(Boom):
            await breaker.call(broken)
        assert breaker.state is OPEN

    async def test_opens_after_consecutive_failures(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=3)
        await _trip(breaker, 2)
        assert breaker.state is CLOSED
        with pytest.raises(Boom, match="service down"):
            await breaker.call(_fail)
        assert breaker.state is OPEN

    async def test_a_success_resets_the_consecutive_count(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=3)
        for _ in range(5):
            await _trip(breaker, 2)
            await breaker.call(_ok)
        assert breaker.state is CLOSED
        assert breaker.metrics().consecutive_failures == 0

    async def test_calls_in_flight_do_not_block_each_other(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker()
        gate = Gate()
        slow = asyncio.create_task(breaker.call(gate))
        await self.settle()
        assert gate.entered == 1
        # No lock is held across the protected call: another call completes meanwhile.
        assert await breaker.call(_ok, "fast") == "fast"
        gate.succeed()
        assert await slow == "done"

    # --- open -------------------------------------------------------------------------

    async def test_open_fails_fast_without_calling(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=2, reset_timeout_ms=2000)
        await _trip(breaker, 2)
        calls = 0

        async def fn() -> None:
            nonlocal calls
            calls += 1

        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(fn)
        assert isinstance(info.value, SpectraError)
        assert info.value.retry_after == pytest.approx(2.0)
        clock.advance(0.5)
        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(fn)
        assert info.value.retry_after == pytest.approx(1.5)
        assert breaker.retry_after == pytest.approx(1.5)
        assert calls == 0
        assert breaker.metrics().rejected_calls == 2

    async def test_half_open_after_the_reset_timeout(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=1, reset_timeout_ms=1000)
        await _trip(breaker, 1)
        clock.advance(0.75)
        assert breaker.state is OPEN
        clock.advance(0.25)
        assert breaker.state is HALF_OPEN
        assert breaker.retry_after == 0.0

    # --- half-open --------------------------------------------------------------------

    @pytest.mark.parametrize("permits", [1, 3])
    async def test_half_open_admits_exactly_the_permitted_concurrent_probes(
        self, make_breaker: MakeBreaker, clock: FakeClock, permits: int
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=permits)
        gate = Gate()
        tasks = [asyncio.create_task(breaker.call(gate)) for _ in range(50)]
        await self.settle()
        assert gate.entered == permits
        rejected = [t for t in tasks if t.done()]
        assert len(rejected) == 50 - permits
        for task in rejected:
            assert isinstance(task.exception(), CircuitOpenError)
        assert breaker.state is HALF_OPEN
        gate.succeed()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results.count("done") == permits
        assert gate.entered == permits
        assert breaker.state is CLOSED

    async def test_closes_after_the_permitted_number_of_successful_probes(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=3)
        await breaker.call(_ok)
        await breaker.call(_ok)
        assert breaker.state is HALF_OPEN
        await breaker.call(_ok)
        assert breaker.state is CLOSED
        # Closed again: a fresh failure count.
        await _trip(breaker, 1)
        assert breaker.state is OPEN

    async def test_a_failing_probe_reopens(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker, clock, half_open_max_requests=3, reset_timeout_ms=1000
        )
        gates = [Gate() for _ in range(3)]
        tasks = [asyncio.create_task(breaker.call(g)) for g in gates]
        await self.settle()
        gates[0].fail()
        with pytest.raises(Boom):
            await tasks[0]
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(1.0)
        # The other probes finishing later belong to the abandoned trial.
        gates[1].succeed()
        gates[2].succeed()
        assert await asyncio.gather(*tasks[1:]) == ["done", "done"]
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)

    async def test_rejected_in_half_open_when_permits_are_taken(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker, clock, half_open_max_requests=1, max_half_open_ms=4000
        )
        gate = Gate()
        probe = asyncio.create_task(breaker.call(gate))
        await self.settle()
        clock.advance(1)
        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(_ok)
        assert 0 < info.value.retry_after <= 3.0
        assert breaker.retry_after > 0
        gate.succeed()
        await probe
        assert breaker.state is CLOSED
        assert breaker.retry_after == 0.0

    # --- excluded exceptions and cancellation -----------------------------------------

    async def test_excluded_exceptions_count_as_neither(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=2, excluded_exceptions=(Ignored,))

        async def ignored() -> None:
            raise Ignored("not the service's fault")

        for _ in range(10):
            with pytest.raises(Ignored):
                await breaker.call(ignored)
        assert breaker.state is CLOSED
        await _trip(breaker, 1)
        # An excluded exception is not a success: the failure count is not reset.
        with pytest.raises(Ignored):
            await breaker.call(ignored)
        await _trip(breaker, 1)
        assert breaker.state is OPEN
        assert breaker.metrics().excluded_calls == 11

    async def test_an_excluded_exception_gives_the_probe_permit_back(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker, clock, half_open_max_requests=1, excluded_exceptions=(Ignored,)
        )
        gate = Gate()
        probe = asyncio.create_task(breaker.call(gate))
        await self.settle()
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        gate.fail(Ignored("excluded"))
        with pytest.raises(Ignored):
            await probe
        assert breaker.state is HALF_OPEN
        assert await breaker.call(_ok, "probe 2") == "probe 2"
        assert breaker.state is CLOSED

    async def test_a_cancelled_probe_gives_its_permit_back(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=2)
        gates = [Gate(), Gate()]
        probes = [asyncio.create_task(breaker.call(g)) for g in gates]
        await self.settle()
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        probes[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await probes[0]
        assert breaker.state is HALF_OPEN
        gate = Gate()
        replacement = asyncio.create_task(breaker.call(gate))
        await self.settle()
        assert gate.entered == 1
        gates[1].succeed()
        gate.succeed()
        assert list(await asyncio.gather(probes[1], replacement)) == ["done", "done"]
        assert breaker.state is CLOSED
        assert breaker.metrics().cancelled_calls == 1

    async def test_cancellation_when_closed_counts_as_neither(
        self, make_breaker: MakeBreaker
    ) -> None:
        breaker = make_breaker(failure_threshold=2)
        await _trip(breaker, 1)
        task = asyncio.create_task(breaker.call(Gate()))
        await self.settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.metrics().consecutive_failures == 1
        await _trip(breaker, 1)
        assert breaker.state is OPEN

    # --- hung probes and stale outcomes ------------------------------------------------

    async def test_hung_probes_cannot_hold_half_open_past_its_maximum(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker,
            clock,
            half_open_max_requests=2,
            reset_timeout_ms=1000,
            max_half_open_ms=500,
        )
        hung = [Gate(), Gate()]
        stuck = [asyncio.create_task(breaker.call(g)) for g in hung]
        await self.settle()
        clock.advance(0.25)
        assert breaker.state is HALF_OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        clock.advance(0.25)
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(1.0)
        clock.advance(1)
        assert breaker.state is HALF_OPEN
        fresh = Gate()
        probes = [asyncio.create_task(breaker.call(fresh)) for _ in range(2)]
        await self.settle()
        assert fresh.entered == 2
        # The hung probes finally return: they belong to the earlier trial and count for nothing.
        for gate in hung:
            gate.succeed()
        await asyncio.gather(*stuck)
        assert breaker.state is HALF_OPEN
        assert breaker.metrics().half_open_successes == 0
        fresh.succeed()
        await asyncio.gather(*probes)
        assert breaker.state is CLOSED

    async def test_an_unobserved_half_open_past_its_maximum_reopens_from_the_deadline(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker,
            clock,
            half_open_max_requests=1,
            reset_timeout_ms=1000,
            max_half_open_ms=500,
        )
        hung = asyncio.create_task(breaker.call(Gate()))
        await self.settle()
        # Nobody looks for a long time: the breaker reopened 0.5 s in and is half-open again.
        clock.advance(10)
        assert await breaker.call(_ok) == "ok"
        assert breaker.state is CLOSED
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung

    async def test_without_a_maximum_hung_probes_keep_their_permits(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=1)
        gate = Gate()
        probe = asyncio.create_task(breaker.call(gate))
        await self.settle()
        clock.advance(3600)
        assert breaker.state is HALF_OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        gate.succeed()
        await probe
        assert breaker.state is CLOSED

    async def test_outcomes_of_calls_admitted_before_a_state_change_are_ignored(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=1, reset_timeout_ms=1000)
        straggler = Gate()
        late = asyncio.create_task(breaker.call(straggler))
        await self.settle()
        await _trip(breaker, 1)
        clock.advance(1)
        assert breaker.state is HALF_OPEN
        # A call admitted while closed fails now: it is not a probe and must not reopen.
        straggler.fail()
        with pytest.raises(Boom):
            await late
        assert breaker.state is HALF_OPEN

    # --- sliding window ---------------------------------------------------------------

    async def test_failure_rate_opens_once_the_minimum_is_recorded(
        self, make_breaker: MakeBreaker
    ) -> None:
        breaker = make_breaker(
            failure_threshold=100,
            failure_rate_threshold=50,
            sliding_window_size=4,
            minimum_number_of_calls=4,
        )
        await _trip(breaker, 1)
        await breaker.call(_ok)
        await _trip(breaker, 1)
        assert breaker.state is CLOSED
        assert breaker.metrics().failure_rate is None
        await breaker.call(_ok)
        # Two failures out of four: 50 % reaches the threshold.
        assert breaker.state is OPEN

    async def test_failure_rate_is_over_the_latest_calls(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(
            failure_threshold=100,
            failure_rate_threshold=50,
            sliding_window_size=4,
            minimum_number_of_calls=4,
        )
        for _ in range(3):
            await breaker.call(_ok)
        await _trip(breaker, 1)  # S S S F: 25 %
        await breaker.call(_ok)  # S S F S: 25 %
        assert breaker.metrics().failure_rate == pytest.approx(25.0)
        assert breaker.state is CLOSED
        await _trip(breaker, 1)  # S F S F: 50 %
        assert breaker.state is OPEN

    async def test_slow_call_rate_opens(self, make_breaker: MakeBreaker, clock: FakeClock) -> None:
        breaker = make_breaker(
            slow_call_duration_ms=250,
            slow_call_rate_threshold=75,
            sliding_window_size=4,
            minimum_number_of_calls=2,
        )

        async def taking(seconds: float) -> str:
            clock.advance(seconds)
            return "done"

        assert await breaker.call(taking, 0.5) == "done"
        await breaker.call(taking, 0.25)  # exactly the threshold is not slow
        assert breaker.metrics().slow_call_rate == pytest.approx(50.0)
        await breaker.call(taking, 0.5)
        assert breaker.metrics().slow_call_rate == pytest.approx(200 / 3)
        assert breaker.state is CLOSED
        await breaker.call(taking, 0.5)  # three slow of four: 75 %
        assert breaker.state is OPEN
        assert breaker.metrics().slow_calls == 3

    async def test_slow_calls_are_not_failures(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(
            failure_threshold=2,
            slow_call_duration_ms=100,
            slow_call_rate_threshold=100,
            sliding_window_size=10,
            minimum_number_of_calls=10,
        )

        async def taking() -> None:
            clock.advance(1)

        for _ in range(9):
            await breaker.call(taking)
        await _trip(breaker, 1)
        assert breaker.state is CLOSED  # 9 slow of 10 is 90 %, one failure is below 2

    async def test_slow_probes_reopen_at_the_slow_rate(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        async def taking(seconds: float) -> None:
            clock.advance(seconds)

        options: dict[str, Any] = {
            "half_open_max_requests": 2,
            "slow_call_duration_ms": 100,
            "slow_call_rate_threshold": 100,
        }
        breaker = await self._half_open(make_breaker, clock, **options)
        await breaker.call(taking, 0.5)
        await breaker.call(taking, 0.5)
        assert breaker.state is OPEN

        breaker = await self._half_open(make_breaker, clock, **options)
        await breaker.call(taking, 0.5)
        await breaker.call(taking, 0.0)
        assert breaker.state is CLOSED

    # --- listeners, decorator, metrics, reset -------------------------------------------

    async def test_listeners_see_every_transition(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=1, reset_timeout_ms=1000, half_open_max_requests=1)
        seen: list[tuple[CircuitState, CircuitState, CircuitBreaker]] = []

        def listener(old: CircuitState, new: CircuitState, b: CircuitBreaker) -> None:
            seen.append((old, new, b))

        breaker.add_listener(listener)
        await _trip(breaker, 1)
        clock.advance(1)
        await _trip(breaker, 1)
        clock.advance(1)
        await breaker.call(_ok)
        assert [(o, n) for o, n, _ in seen] == [
            (CLOSED, OPEN),
            (OPEN, HALF_OPEN),
            (HALF_OPEN, OPEN),
            (OPEN, HALF_OPEN),
            (HALF_OPEN, CLOSED),
        ]
        assert all(b is breaker for *_, b in seen)
        breaker.remove_listener(listener)
        await _trip(breaker, 1)
        assert len(seen) == 5

    async def test_a_raising_listener_does_not_break_the_breaker(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=1, reset_timeout_ms=1000, half_open_max_requests=1)
        seen: list[CircuitState] = []

        def broken(old: CircuitState, new: CircuitState, b: CircuitBreaker) -> None:
            raise RuntimeError("listener bug")

        breaker.add_listener(broken)
        breaker.add_listener(lambda old, new, b: seen.append(new))
        with pytest.raises(Boom):
            await breaker.call(_fail)
        assert breaker.state is OPEN
        clock.advance(1)
        assert await breaker.call(_ok) == "ok"
        assert breaker.state is CLOSED
        assert seen == [OPEN, HALF_OPEN, CLOSED]

    async def test_decorator(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=2)

        @breaker
        async def greet(name: str, *, punctuation: str = "!") -> str:
            """Say hello."""
            if not name:
                raise Boom("no name")
            return f"hello {name}{punctuation}"

        async def shout(name: str) -> str:
            return name.upper()

        assert greet.__name__ == "greet"
        assert greet.__doc__ == "Say hello."
        assert await greet("ada", punctuation=".") == "hello ada."
        assert await breaker.protect(shout)("ada") == "ADA"
        for _ in range(2):
            with pytest.raises(Boom):
                await greet("")
        with pytest.raises(CircuitOpenError):
            await greet("ada")

    async def test_metrics_count_outcomes(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=3, excluded_exceptions=(Ignored,))

        async def ignored() -> None:
            raise Ignored

        await breaker.call(_ok)
        await breaker.call(_ok)
        await _trip(breaker, 1)
        with pytest.raises(Ignored):
            await breaker.call(ignored)
        m = breaker.metrics()
        assert (m.state, m.successful_calls, m.failed_calls, m.excluded_calls) == (CLOSED, 2, 1, 1)
        assert (m.consecutive_failures, m.rejected_calls, m.cancelled_calls) == (1, 0, 0)
        await _trip(breaker, 2)
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        m = breaker.metrics()
        assert (m.state, m.failed_calls, m.rejected_calls) == (OPEN, 3, 1)

    async def test_reset_closes_and_forgets(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=2)
        await _trip(breaker, 2)
        assert breaker.state is OPEN
        breaker.reset()
        assert breaker.state is CLOSED
        await _trip(breaker, 1)
        breaker.reset()
        await _trip(breaker, 1)
        assert breaker.state is CLOSED

    # --- bad input --------------------------------------------------------------------

    @pytest.mark.parametrize(
        "bad",
        [
            {"failure_threshold": 0},
            {"failure_threshold": -1},
            {"failure_threshold": 2.5},
            {"reset_timeout_ms": 0},
            {"reset_timeout_ms": -5},
            {"reset_timeout_ms": float("inf")},
            {"half_open_max_requests": 0},
            {"failure_rate_threshold": 0},
            {"failure_rate_threshold": 101},
            {"failure_rate_threshold": -10},
            {"sliding_window_size": 0},
            {"minimum_number_of_calls": 0},
            {"slow_call_duration_ms": 0},
            {"slow_call_rate_threshold": 0},
            {"slow_call_rate_threshold": 150},
            {"max_half_open_ms": -1},
            {"excluded_exceptions": (ValueError, "nope")},
        ],
    )
    async def test_invalid_settings_are_rejected_at_construction(
        self, make_breaker: MakeBreaker, bad: dict[str, Any]
    ) -> None:
        name = next(iter(bad))
        with pytest.raises(InvalidArgumentError, match=name):
            make_breaker(**bad)
        with pytest.raises(ValueError, match=name):
            make_breaker(**bad)
