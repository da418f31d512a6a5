"""The fixtures, hooks and helpers of the circuit breaker conformance suite (see
breaker_conformance)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ..breaker import CircuitBreaker, CircuitState
from .clock import FakeClock

__all__ = ["BreakerConformanceBase"]

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


class BreakerConformanceBase:
    """Fixtures and the hooks a backend overrides; the tests are in the subclasses."""

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
