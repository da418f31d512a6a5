"""What every circuit breaker shares: the decorator, listeners and the timed rules.

:class:`BreakerBase` gives ``protect``/``__call__`` over the subclass's ``call`` and
the listener list; :func:`timed_transition` and :func:`admission_wait` are the rules
that time alone decides (open to half-open, a hung half-open back to open, how long a
refused call waits). The in-process :class:`~spectra_core.DefaultCircuitBreaker` and the
shared Redis breaker both use them, each in its own unit of time.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

import structlog

from ._protocol import BreakerListener, CircuitState

__all__ = ["BreakerBase", "admission_wait", "timed_transition"]

P = ParamSpec("P")
T = TypeVar("T")
N = TypeVar("N", int, float)

_log = structlog.get_logger("spectra.breaker")


class BreakerBase:
    """``protect``, ``@breaker``, ``add_listener``/``remove_listener`` and
    :meth:`_notify`, for a breaker that defines ``name`` and ``call`` and sets
    ``self._listeners = []`` in its constructor."""

    __slots__ = ()

    _listeners: list[BreakerListener]

    @property
    def name(self) -> str:
        raise NotImplementedError

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @overload
    def protect(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def protect(self, fn: Callable[P, T], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def protect(self, fn: Callable[..., Any], /) -> Callable[..., Coroutine[Any, Any, Any]]:
        """Wrap ``fn`` so that every call goes through :meth:`call` (an async function)."""
        call = self.call

        @functools.wraps(fn)
        async def protected(*args: Any, **kwargs: Any) -> Any:
            return await call(fn, *args, **kwargs)

        return protected

    __call__ = protect

    def add_listener(self, listener: BreakerListener, /) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: BreakerListener, /) -> None:
        self._listeners.remove(listener)

    def _notify(self, old: CircuitState, new: CircuitState) -> None:
        """Call every listener with ``(old, new, self)``; one that raises is logged and
        the others still hear the transition."""
        for listener in tuple(self._listeners):
            try:
                listener(old, new, self)  # type: ignore[arg-type]
            except Exception:
                _log.exception(
                    "circuit breaker listener failed; the breaker carries on",
                    breaker=self.name,
                    listener=repr(listener),
                    old_state=old.value,
                    new_state=new.value,
                )


def timed_transition(
    state: CircuitState,
    now: N,
    opened_at: N,
    half_open_at: N,
    reset: N,
    max_half_open: N | None,
) -> tuple[CircuitState, N] | None:
    """The transition that time alone causes at ``now``, with the moment it takes effect,
    or None: OPEN goes HALF_OPEN once ``reset`` has passed; HALF_OPEN goes back to OPEN
    once ``max_half_open`` has passed, as of the moment it passed (so a breaker nobody
    looked at for a while does not wait a whole extra ``reset``). Apply it and ask again
    until None."""
    if state is CircuitState.OPEN and now >= opened_at + reset:
        return CircuitState.HALF_OPEN, now
    if (
        state is CircuitState.HALF_OPEN
        and max_half_open is not None
        and now >= half_open_at + max_half_open
    ):
        return CircuitState.OPEN, half_open_at + max_half_open
    return None


def admission_wait(
    state: CircuitState,
    now: N,
    opened_at: N,
    half_open_at: N,
    reset: N,
    max_half_open: N | None,
    permits_left: bool,
) -> N:
    """How long until a call could be admitted, once the timed transitions are applied:
    OPEN waits out ``reset``; HALF_OPEN with every permit taken waits for
    ``max_half_open`` to end it (or ``reset`` without one); otherwise nothing."""
    zero = now - now  # 0, in N's type
    if state is CircuitState.OPEN:
        return max(zero, opened_at + reset - now)
    if state is CircuitState.HALF_OPEN and not permits_left:
        if max_half_open is not None:
            return max(zero, half_open_at + max_half_open - now)
        return reset
    return zero
