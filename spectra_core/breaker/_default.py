"""DefaultCircuitBreaker: an in-process breaker with Resilience4j semantics for asyncio."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from ..clock import Clock, SystemClock
from ..errors import CircuitOpenError, InvalidArgumentError
from ._base import BreakerBase, admission_wait, timed_transition
from ._checks import check_percentage, check_positive, check_positive_int
from ._protocol import BreakerListener, BreakerMetrics, CircuitState

if TYPE_CHECKING:
    from ._options import CircuitBreakerOptions

__all__ = ["DefaultCircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

# Outcome codes kept in the sliding window.
_FAILED = 1
_SLOW = 2


class DefaultCircuitBreaker(BreakerBase):
    """A circuit breaker kept in process memory.

    * CLOSED: calls pass. ``failure_threshold`` consecutive failures open it; so does a
      failure or slow-call rate at or above its threshold over the last
      ``sliding_window_size`` outcomes, once ``minimum_number_of_calls`` are recorded.
    * OPEN: calls fail fast with :class:`~spectra_core.CircuitOpenError` (with
      ``retry_after``) and the function is not called. After ``reset_timeout_ms`` it goes
      HALF_OPEN.
    * HALF_OPEN: ``half_open_max_requests`` permits; calls beyond them fail fast. A probe
      that fails reopens the breaker; once ``half_open_max_requests`` probes have
      succeeded it closes (or reopens if the slow-call rate among them reaches its
      threshold). After ``max_half_open_ms`` in half-open it reopens, so hung probes
      cannot hold it there.

    Excluded exceptions, cancellation (``asyncio.CancelledError``) and other
    ``BaseException`` count as neither success nor failure and give a half-open permit
    back. Outcomes of calls admitted before the latest state change are ignored.

    No lock is held while the protected call runs: every decision is a synchronous step
    on the event loop. Time comes only from ``clock.monotonic()``; time-based
    transitions are applied when the breaker is next used or inspected.
    """

    __slots__ = (
        "_clock",
        "_consecutive",
        "_counted",
        "_epoch",
        "_excluded",
        "_failure_rate",
        "_failure_threshold",
        "_half_open_at",
        "_ho_in_flight",
        "_ho_max",
        "_ho_slow",
        "_ho_successes",
        "_listeners",
        "_max_half_open",
        "_min_calls",
        "_name",
        "_opened_at",
        "_reset",
        "_ring",
        "_ring_failed",
        "_ring_slow",
        "_slow",
        "_slow_rate",
        "_state",
        "_totals",
        "_window",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_ms: float = 30_000,
        half_open_max_requests: int = 3,
        *,
        clock: Clock | None = None,
        excluded_exceptions: tuple[type[BaseException], ...] = (),
        failure_rate_threshold: float | None = None,
        sliding_window_size: int = 100,
        minimum_number_of_calls: int = 100,
        slow_call_duration_ms: float | None = None,
        slow_call_rate_threshold: float = 100.0,
        max_half_open_ms: float | None = None,
        name: str = "breaker",
    ) -> None:
        self._failure_threshold = check_positive_int("failure_threshold", failure_threshold)
        self._reset = check_positive("reset_timeout_ms", reset_timeout_ms, "milliseconds") / 1000
        self._ho_max = check_positive_int("half_open_max_requests", half_open_max_requests)
        self._failure_rate = (
            None
            if failure_rate_threshold is None
            else check_percentage("failure_rate_threshold", failure_rate_threshold)
        )
        window = check_positive_int("sliding_window_size", sliding_window_size)
        # As in Resilience4j, a count-based window never needs more calls than it holds.
        self._min_calls = min(
            check_positive_int("minimum_number_of_calls", minimum_number_of_calls), window
        )
        self._slow = (
            None
            if slow_call_duration_ms is None
            else check_positive("slow_call_duration_ms", slow_call_duration_ms, "milliseconds")
            / 1000
        )
        self._slow_rate = check_percentage("slow_call_rate_threshold", slow_call_rate_threshold)
        self._max_half_open = (
            None
            if max_half_open_ms is None
            else check_positive("max_half_open_ms", max_half_open_ms, "milliseconds") / 1000
        )
        if not isinstance(excluded_exceptions, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in excluded_exceptions
        ):
            raise InvalidArgumentError(
                "circuit breaker excluded_exceptions must be a tuple of exception classes, "
                f"got {excluded_exceptions!r}"
            )
        self._excluded = excluded_exceptions
        self._name = name
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._window = self._failure_rate is not None or self._slow is not None
        self._ring: deque[int] = deque(maxlen=window)
        self._listeners: list[BreakerListener] = []
        # successful, failed, slow, excluded, cancelled, rejected
        self._totals = [0, 0, 0, 0, 0, 0]
        self._state = _CLOSED
        self._epoch = 0
        self._opened_at = 0.0
        self._half_open_at = 0.0
        self._clear()

    @classmethod
    def from_options(
        cls, options: CircuitBreakerOptions, *, clock: Clock | None = None, name: str = "breaker"
    ) -> DefaultCircuitBreaker:
        """A breaker from config-file options (durations in seconds)."""
        return cls(
            options.failure_threshold,
            options.reset_timeout * 1000,
            options.half_open_max_requests,
            clock=clock,
            failure_rate_threshold=options.failure_rate_threshold,
            sliding_window_size=options.sliding_window_size,
            minimum_number_of_calls=options.minimum_number_of_calls,
            slow_call_duration_ms=None
            if options.slow_call_duration is None
            else options.slow_call_duration * 1000,
            slow_call_rate_threshold=options.slow_call_rate_threshold,
            max_half_open_ms=None
            if options.max_half_open is None
            else options.max_half_open * 1000,
            name=name,
        )

    def __repr__(self) -> str:
        return f"<DefaultCircuitBreaker {self._name!r} {self._state.value}>"

    # --- public API -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> CircuitState:
        if self._state is not _CLOSED:
            self._tick(self._clock.monotonic())
        return self._state

    @property
    def retry_after(self) -> float:
        if self._state is _CLOSED:
            return 0.0
        now = self._clock.monotonic()
        self._tick(now)
        return self._wait(now)

    @overload
    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (awaiting its result if awaitable) under the breaker.

        Raises :class:`~spectra_core.CircuitOpenError` without calling ``fn`` when the
        breaker is open or its half-open permits are taken; otherwise returns what ``fn``
        returns and re-raises what it raises, recording the outcome.
        """
        epoch = self._epoch if self._state is _CLOSED else self._admit()
        slow = self._slow
        start = 0.0 if slow is None else self._clock.monotonic()
        try:
            result = fn(*args, **kwargs)
            if type(result) is CoroutineType or (result is not None and isawaitable(result)):
                result = await result
        except Exception as exc:
            if isinstance(exc, self._excluded):
                self._totals[3] += 1
                self._release(epoch)
            else:
                self._failure(epoch, start)
            raise
        except BaseException:
            self._totals[4] += 1
            self._release(epoch)
            raise
        if epoch == self._epoch and self._state is _CLOSED:
            self._totals[0] += 1
            self._consecutive = 0
            if self._window:
                self._record(_SLOW if slow is not None and self._elapsed(start) > slow else 0)
        else:
            self._success(epoch, start)
        return result

    def metrics(self) -> BreakerMetrics:
        state = self.state
        n = len(self._ring)
        rated = self._window and n >= self._min_calls
        ok, failed, slow, excluded, cancelled, rejected = self._totals
        return BreakerMetrics(
            state=state,
            successful_calls=ok,
            failed_calls=failed,
            slow_calls=slow,
            excluded_calls=excluded,
            cancelled_calls=cancelled,
            rejected_calls=rejected,
            consecutive_failures=self._consecutive,
            buffered_calls=n,
            failure_rate=100.0 * self._ring_failed / n
            if rated and self._failure_rate is not None
            else None,
            slow_call_rate=100.0 * self._ring_slow / n
            if rated and self._slow is not None
            else None,
            half_open_in_flight=self._ho_in_flight,
            half_open_successes=self._ho_successes,
        )

    def reset(self) -> None:
        if self._state is _CLOSED:
            self._epoch += 1
            self._clear()
        else:
            self._transition(_CLOSED, self._clock.monotonic())

    # --- state machine ----------------------------------------------------------------

    def _clear(self) -> None:
        self._consecutive = 0
        self._ring.clear()
        self._ring_failed = self._ring_slow = 0
        self._ho_in_flight = self._ho_successes = self._ho_slow = 0

    def _transition(self, new: CircuitState, at: float) -> None:
        old = self._state
        self._state = new
        self._epoch += 1
        self._clear()
        if new is _OPEN:
            self._opened_at = at
        elif new is _HALF_OPEN:
            self._half_open_at = at
        self._notify(old, new)

    def _tick(self, now: float) -> None:
        """Apply the transitions that time alone causes."""
        while due := timed_transition(
            self._state, now, self._opened_at, self._half_open_at, self._reset, self._max_half_open
        ):
            self._transition(*due)

    def _wait(self, now: float) -> float:
        """Seconds until a call could be admitted (after :meth:`_tick`)."""
        permits_left = self._ho_in_flight + self._ho_successes < self._ho_max
        return admission_wait(
            self._state,
            now,
            self._opened_at,
            self._half_open_at,
            self._reset,
            self._max_half_open,
            permits_left,
        )

    def _admit(self) -> int:
        """Take a permit, returning the current epoch, or raise CircuitOpenError."""
        now = self._clock.monotonic()
        self._tick(now)
        state = self._state
        if state is _CLOSED:
            return self._epoch
        if state is _HALF_OPEN and self._ho_in_flight + self._ho_successes < self._ho_max:
            self._ho_in_flight += 1
            return self._epoch
        self._totals[5] += 1
        retry_after = self._wait(now)
        if state is _OPEN:
            detail = "is open"
        else:
            detail = f"is half-open and its {self._ho_max} probe permits are taken"
        raise CircuitOpenError(
            f"circuit breaker {self._name!r} {detail}: the call was not made; "
            f"retry in {retry_after:.3f}s",
            retry_after,
        )

    def _release(self, epoch: int) -> None:
        """A call ended with no verdict (excluded exception, cancellation)."""
        if self._state is not _CLOSED:
            self._tick(self._clock.monotonic())
        if epoch == self._epoch and self._state is _HALF_OPEN:
            self._ho_in_flight -= 1

    def _elapsed(self, start: float) -> float:
        """Seconds since ``start``, counting a slow call in the totals."""
        elapsed = self._clock.monotonic() - start
        if self._slow is not None and elapsed > self._slow:
            self._totals[2] += 1
        return elapsed

    def _success(self, epoch: int, start: float) -> None:
        """A success outside the closed fast path (stale, or a half-open probe)."""
        self._totals[0] += 1
        slow = self._slow is not None and self._elapsed(start) > self._slow
        self._tick(self._clock.monotonic())
        if epoch != self._epoch:
            return
        # Still the same episode, so still half-open: this was a probe.
        self._ho_in_flight -= 1
        self._ho_successes += 1
        self._ho_slow += slow
        if self._ho_successes >= self._ho_max:
            reopen = self._slow is not None and 100.0 * self._ho_slow >= self._slow_rate * (
                self._ho_successes
            )
            self._transition(_OPEN if reopen else _CLOSED, self._clock.monotonic())

    def _failure(self, epoch: int, start: float) -> None:
        self._totals[1] += 1
        slow = self._slow is not None and self._elapsed(start) > self._slow
        now = self._clock.monotonic()
        if self._state is not _CLOSED:
            self._tick(now)
        if epoch != self._epoch:
            return
        if self._state is _HALF_OPEN:
            self._transition(_OPEN, now)
            return
        self._consecutive += 1
        if self._consecutive >= self._failure_threshold:
            self._transition(_OPEN, now)
        elif self._window:
            self._record(_FAILED | (_SLOW if slow else 0))

    def _record(self, outcome: int) -> None:
        """Add an outcome to the sliding window and open the breaker if a rate trips."""
        ring = self._ring
        n = len(ring)
        if n == ring.maxlen:
            evicted = ring[0]
            if evicted:
                self._ring_failed -= evicted & _FAILED
                self._ring_slow -= evicted >> 1
        else:
            n += 1
        ring.append(outcome)
        if outcome:
            self._ring_failed += outcome & _FAILED
            self._ring_slow += outcome >> 1
        elif n != self._min_calls:
            return  # a good outcome cannot raise a rate that was already being checked
        if n < self._min_calls:
            return
        if (
            self._failure_rate is not None and 100.0 * self._ring_failed >= self._failure_rate * n
        ) or (self._slow is not None and 100.0 * self._ring_slow >= self._slow_rate * n):
            self._transition(_OPEN, self._clock.monotonic())
