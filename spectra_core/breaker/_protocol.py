"""The circuit breaker contract: states, the protocol, listeners and the metrics snapshot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from typing import Any, ParamSpec, Protocol, TypeVar, overload, runtime_checkable

import attrs

__all__ = ["BreakerListener", "BreakerMetrics", "CircuitBreaker", "CircuitState"]

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    """Calls pass through; outcomes are counted."""
    OPEN = "open"
    """Calls fail fast with :class:`~spectra_core.CircuitOpenError`; nothing is called."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls pass through to test the protected service."""


#: ``listener(old_state, new_state, breaker)``, called synchronously on every transition.
BreakerListener = Callable[[CircuitState, CircuitState, "CircuitBreaker"], object]


@attrs.frozen
class BreakerMetrics:
    """A snapshot of a breaker's counters.

    The ``*_calls`` totals count every outcome since the breaker was created. The rates
    cover the sliding window (closed state only) and are ``None`` while no window is
    configured or it holds fewer than ``minimum_number_of_calls`` outcomes.
    """

    state: CircuitState
    successful_calls: int = 0
    failed_calls: int = 0
    slow_calls: int = 0
    excluded_calls: int = 0
    cancelled_calls: int = 0
    rejected_calls: int = 0
    consecutive_failures: int = 0
    buffered_calls: int = 0
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    half_open_in_flight: int = 0
    half_open_successes: int = 0


@runtime_checkable
class CircuitBreaker(Protocol):
    """What every circuit breaker backend provides.

    ``await breaker.call(fn, *args, **kwargs)`` runs ``fn`` (a coroutine function, or a
    plain callable whose result is returned as is) under the breaker; ``@breaker`` and
    ``breaker.protect(fn)`` wrap a function so every call goes through :meth:`call`.
    """

    @property
    def name(self) -> str:
        """The breaker's name, used in errors and logs."""
        ...

    @property
    def state(self) -> CircuitState:
        """The current state (time-based transitions are applied first)."""
        ...

    @property
    def retry_after(self) -> float:
        """Seconds until a call could be admitted again; ``0.0`` when one would be now."""
        ...

    @overload
    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...

    @overload
    def protect(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def protect(self, fn: Callable[P, T], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def add_listener(self, listener: BreakerListener, /) -> None:
        """Call ``listener(old_state, new_state, breaker)`` on every state change."""
        ...

    def remove_listener(self, listener: BreakerListener, /) -> None:
        """Stop calling ``listener``; raises ``ValueError`` if it was never added."""
        ...

    def metrics(self) -> BreakerMetrics:
        """A snapshot of the counters."""
        ...

    def reset(self) -> None:
        """Close the breaker and forget every recorded outcome."""
        ...
