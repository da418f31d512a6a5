import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from spectra_core import (
    BackendKind,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    DefaultCircuitBreaker,
    InvalidArgumentError,
    load_plugins,
)
from spectra_core.durations import Duration
from spectra_core.testing import CircuitBreakerConformance, FakeClock
from spectra_memory import MemoryBreakerOptions, create_memory_breaker


class TestMemoryCircuitBreaker(CircuitBreakerConformance):
    @pytest.fixture
    def make_breaker(self, clock: FakeClock) -> Callable[..., CircuitBreaker]:
        # The memory backend is a DefaultCircuitBreaker; the suite drives it with a FakeClock.
        return lambda **kwargs: DefaultCircuitBreaker(clock=clock, **kwargs)


def test_memory_breaker_is_registered_through_the_entry_point() -> None:
    registry = load_plugins()
    backend = registry.get(BackendKind.CIRCUIT_BREAKER, "memory")
    assert backend.distribution == "spectra-memory"
    assert backend.options is MemoryBreakerOptions
    breaker = registry.create(BackendKind.CIRCUIT_BREAKER, "memory")
    assert isinstance(breaker, DefaultCircuitBreaker)
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.state is CircuitState.CLOSED


def test_the_first_release_factory_name_is_the_same_function() -> None:
    from spectra_memory import memory_breaker

    assert memory_breaker is create_memory_breaker


async def fail() -> None:
    raise RuntimeError("down")


async def test_the_factory_applies_the_core_options() -> None:
    clock = FakeClock()
    options = MemoryBreakerOptions(
        failure_threshold=2,
        reset_timeout=Duration(45.0),
        half_open_max_requests=1,
        max_half_open=Duration(10.0),
    )
    breaker = create_memory_breaker(options, clock=clock)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await breaker.call(fail)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(fail)
    assert info.value.retry_after == 45.0
    clock.advance(45)
    hung = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):  # one probe permit
        await breaker.call(fail)
    clock.advance(10)
    assert breaker.state is CircuitState.OPEN  # max_half_open
    hung.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung


async def test_the_factory_applies_the_window_options() -> None:
    clock = FakeClock()
    rate = create_memory_breaker(
        MemoryBreakerOptions(
            failure_threshold=100,
            failure_rate_threshold=50.0,
            sliding_window_size=4,
            minimum_number_of_calls=2,
        ),
        clock=clock,
    )
    await rate.call(clock.sleep, 0)
    with pytest.raises(RuntimeError):
        await rate.call(fail)
    assert rate.state is CircuitState.OPEN

    slow = create_memory_breaker(
        MemoryBreakerOptions(
            slow_call_duration=Duration(2.0),
            slow_call_rate_threshold=50.0,
            sliding_window_size=2,
            minimum_number_of_calls=2,
        ),
        clock=clock,
    )

    async def taking(seconds: float) -> None:
        clock.advance(seconds)

    await slow.call(taking, 2.0)  # not slower than 2 s
    await slow.call(taking, 2.5)
    assert slow.state is CircuitState.OPEN


def test_options_validate_at_construction() -> None:
    with pytest.raises(InvalidArgumentError, match="reset_timeout"):
        MemoryBreakerOptions(reset_timeout=Duration(0.0))
    with pytest.raises(ValueError, match="failure_rate_threshold"):
        MemoryBreakerOptions(failure_rate_threshold=0.0)


def test_options_defaults() -> None:
    fields: dict[str, Any] = {f.name: f.default for f in MemoryBreakerOptions.__attrs_attrs__}
    assert fields == {
        "failure_threshold": 5,
        "reset_timeout": 30.0,
        "half_open_max_requests": 3,
        "failure_rate_threshold": None,
        "sliding_window_size": 100,
        "minimum_number_of_calls": 100,
        "slow_call_duration": None,
        "slow_call_rate_threshold": 100.0,
        "max_half_open": None,
    }
