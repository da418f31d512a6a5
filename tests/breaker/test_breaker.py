import asyncio
import inspect
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog

from spectra_core import (
    CircuitBreaker,
    CircuitBreakerOptions,
    CircuitOpenError,
    CircuitState,
    DefaultCircuitBreaker,
    InvalidArgumentError,
)
from spectra_core.durations import Duration
from spectra_core.testing import CircuitBreakerConformance, FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Boom(Exception):
    pass


async def fail() -> None:
    raise Boom("down")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class TestDefaultCircuitBreaker(CircuitBreakerConformance):
    @pytest.fixture
    def make_breaker(self, clock: FakeClock) -> Any:
        return lambda **kwargs: DefaultCircuitBreaker(clock=clock, **kwargs)


async def open_then_half_open(clock: FakeClock, **kwargs: Any) -> DefaultCircuitBreaker:
    breaker = DefaultCircuitBreaker(1, 1000, clock=clock, **kwargs)
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(1)
    assert breaker.state is HALF_OPEN
    return breaker


@pytest.mark.parametrize("permits", [1, 3, 7])
async def test_fifty_concurrent_calls_on_half_open_reach_the_function_exactly_n_times(
    permits: int,
) -> None:
    clock = FakeClock()
    breaker = await open_then_half_open(clock, half_open_max_requests=permits)
    release = asyncio.Event()
    reached = 0
    in_flight = 0
    most_in_flight = 0

    async def probe() -> str:
        nonlocal reached, in_flight, most_in_flight
        reached += 1
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await release.wait()
        in_flight -= 1
        return "ok"

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(50)]
    await settle()
    assert reached == permits
    assert breaker.metrics().half_open_in_flight == permits
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert reached == permits
    assert most_in_flight == permits
    assert results.count("ok") == permits
    errors = [r for r in results if r != "ok"]
    assert len(errors) == 50 - permits
    assert all(isinstance(e, CircuitOpenError) for e in errors)
    assert breaker.state is CLOSED
    assert breaker.metrics().rejected_calls == 50 - permits


async def test_cancelled_probes_return_their_permits_repeatedly() -> None:
    clock = FakeClock()
    breaker = await open_then_half_open(clock, half_open_max_requests=2)
    never = asyncio.Event()
    for _ in range(10):
        tasks = [asyncio.create_task(breaker.call(never.wait)) for _ in range(5)]
        await settle()
        assert breaker.metrics().half_open_in_flight == 2
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(o, asyncio.CancelledError) for o in outcomes) == 2
        assert sum(isinstance(o, CircuitOpenError) for o in outcomes) == 3
        assert breaker.metrics().half_open_in_flight == 0
        assert breaker.state is HALF_OPEN
    assert breaker.metrics().cancelled_calls == 20


async def test_a_keyboard_interrupt_is_not_a_failure_and_is_not_swallowed() -> None:
    breaker = DefaultCircuitBreaker(1, clock=FakeClock())

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await breaker.call(interrupted)
    assert breaker.state is CLOSED


async def test_excluded_subclasses_are_excluded() -> None:
    breaker = DefaultCircuitBreaker(1, clock=FakeClock(), excluded_exceptions=(LookupError,))

    def missing() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        await breaker.call(missing)
    assert breaker.state is CLOSED
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is OPEN


async def test_a_raising_listener_is_logged() -> None:
    clock = FakeClock()
    breaker = DefaultCircuitBreaker(1, clock=clock, name="llm")

    def broken(old: CircuitState, new: CircuitState, b: CircuitBreaker) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    with structlog.testing.capture_logs() as logs, pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is OPEN
    assert len(logs) == 1
    assert logs[0]["breaker"] == "llm"
    assert logs[0]["old_state"] == "closed" and logs[0]["new_state"] == "open"
    assert logs[0]["log_level"] == "error"


async def test_a_listener_may_inspect_the_breaker() -> None:
    clock = FakeClock()
    breaker = DefaultCircuitBreaker(1, 1000, clock=clock)
    seen: list[tuple[CircuitState, float]] = []
    breaker.add_listener(lambda old, new, b: seen.append((b.state, b.retry_after)))
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert seen == [(OPEN, 1.0)]


async def test_the_error_message_names_the_breaker_and_the_wait() -> None:
    clock = FakeClock()
    breaker = DefaultCircuitBreaker(1, 30_000, clock=clock, name="openai")
    with pytest.raises(Boom):
        await breaker.call(fail)
    expected = r"'openai' is open: the call was not made; retry in 30\.000s"
    with pytest.raises(CircuitOpenError, match=expected):
        await breaker.call(fail)


async def test_minimum_number_of_calls_is_capped_at_the_window_size() -> None:
    breaker = DefaultCircuitBreaker(
        100, clock=FakeClock(), failure_rate_threshold=100, sliding_window_size=3
    )
    for _ in range(3):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state is OPEN


async def test_repr_and_protocol() -> None:
    breaker = DefaultCircuitBreaker(name="x")
    assert repr(breaker) == "<DefaultCircuitBreaker 'x' closed>"
    assert isinstance(breaker, CircuitBreaker)


async def test_the_system_clock_is_the_default() -> None:
    breaker = DefaultCircuitBreaker(1, 60_000)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert 0 < breaker.retry_after <= 60


# --- options --------------------------------------------------------------------------


def test_options_defaults_match_the_constructor() -> None:
    options = CircuitBreakerOptions()
    assert options.failure_threshold == 5
    assert options.reset_timeout == 30.0
    assert options.half_open_max_requests == 3
    assert options.failure_rate_threshold is None
    assert options.slow_call_duration is None
    assert options.max_half_open is None


async def test_from_options_converts_seconds() -> None:
    clock = FakeClock()
    options = CircuitBreakerOptions(
        failure_threshold=2,
        reset_timeout=Duration(2.5),
        half_open_max_requests=1,
        max_half_open=Duration(0.5),
    )
    breaker = DefaultCircuitBreaker.from_options(options, clock=clock, name="cfg")
    assert breaker.name == "cfg"
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.retry_after == 2.5
    clock.advance(2.5)
    hung = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await settle()
    clock.advance(0.5)
    assert breaker.state is OPEN
    hung.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung


@pytest.mark.parametrize(
    "bad",
    [
        {"failure_threshold": 0},
        {"failure_threshold": True},
        {"reset_timeout": 0},
        {"reset_timeout": -1.0},
        {"half_open_max_requests": -3},
        {"failure_rate_threshold": 0.0},
        {"failure_rate_threshold": 100.5},
        {"sliding_window_size": 0},
        {"minimum_number_of_calls": 0},
        {"slow_call_duration": 0.0},
        {"slow_call_rate_threshold": 0.0},
        {"max_half_open": 0.0},
    ],
)
def test_options_reject_bad_values_naming_the_key(bad: dict[str, Any]) -> None:
    key = next(iter(bad))
    with pytest.raises(InvalidArgumentError, match=rf"circuit breaker {key} must be"):
        CircuitBreakerOptions(**bad)


def test_the_docs_describe_every_option() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "circuit-breaker.md").read_text()
    arguments = list(inspect.signature(DefaultCircuitBreaker).parameters)
    keys = [f.name for f in attrs.fields(CircuitBreakerOptions)]
    missing = [name for name in [*arguments, *keys] if f"`{name}`" not in docs]
    assert not missing, f"docs/circuit-breaker.md does not describe {missing}"
