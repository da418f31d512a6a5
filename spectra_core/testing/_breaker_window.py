"""Circuit breaker conformance: the sliding window's rates, listeners, the decorator,
metrics, reset and construction errors."""

from __future__ import annotations

from typing import Any

import pytest

from ..breaker import CircuitBreaker, CircuitState
from ..errors import CircuitOpenError, InvalidArgumentError
from ._breaker_base import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Boom,
    BreakerConformanceBase,
    Ignored,
    MakeBreaker,
    _fail,
    _ok,
    _trip,
)
from .clock import FakeClock

__all__ = ["BreakerWindowConformance"]


class BreakerWindowConformance(BreakerConformanceBase):
    """The rates, listeners, decorator, metrics, reset and settings checks (part of
    :class:`CircuitBreakerConformance`)."""

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
