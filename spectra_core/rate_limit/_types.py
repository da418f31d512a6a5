"""The rate limiter contract: results, reservations, requests and the protocol."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, runtime_checkable

import attrs

from ..errors import InvalidArgumentError

__all__ = [
    "AtomicGroup",
    "RateLimitRequest",
    "RateLimitResult",
    "RateLimiter",
    "Reservation",
    "ReservationBase",
    "check_cost",
]


@attrs.frozen(slots=True)
class RateLimitResult:
    """The decision on one request.

    ``allowed``: whether the request was admitted (and its cost consumed).
    ``remaining``: how much cost the key can still be admitted right now, after this decision.
    ``reset_at``: wall-clock epoch seconds (from the limiter's clock) at which all quota in
    use for the key is free again; now when none is in use.
    ``retry_after``: seconds from now until the same request would be admitted, assuming
    nothing else happens: ``0.0`` when allowed, ``math.inf`` when no wait could ever
    admit it (its cost is larger than the limit).
    """

    allowed: bool
    remaining: int
    reset_at: float
    retry_after: float


@attrs.frozen(slots=True)
class RateLimitRequest:
    """What a :class:`~spectra_core.rate_limit.CompositeRateLimiter` keys its limiters on.

    Each limiter of a composite reads one dimension: ``"user"`` (``user_id``),
    ``"tenant"`` (``tenant_id``), ``"provider"``, ``"session"`` (``session_id``).
    """

    user_id: str
    tenant_id: str | None = None
    provider: str | None = None
    session_id: str | None = None


@runtime_checkable
class Reservation(Protocol):
    """Quota held by :meth:`RateLimiter.reserve`.

    When ``result.allowed`` the cost is held (counted as used) until :meth:`release` gives
    it back as if the request had never been admitted; :meth:`commit` keeps it. A
    reservation never settled counts as committed. When not allowed nothing is held and
    both methods do nothing. Only the first of ``commit``/``release`` has an effect.
    """

    @property
    def result(self) -> RateLimitResult: ...

    async def commit(self) -> None: ...

    async def release(self) -> None: ...


@runtime_checkable
class RateLimiter(Protocol):
    """A rate limiter. Rejected requests consume nothing."""

    async def check_limit(self, key: str, cost: int = 1) -> RateLimitResult:
        """Admit ``cost`` for ``key`` if the limit allows it, consuming it; else consume nothing."""
        ...

    async def reserve(self, key: str, cost: int = 1) -> Reservation:
        """Like :meth:`check_limit`, but hold the cost until committed or released."""
        ...


@runtime_checkable
class AtomicGroup(Protocol):
    """Limiters that can decide several keys together, in one atomic step.

    A limiter may offer ``atomic_group()`` returning such a group (or None). When every
    limiter of a :class:`~spectra_core.rate_limit.CompositeRateLimiter` returns groups
    that compare equal, the composite calls ``reserve_all`` once instead of reserving
    limiter by limiter: the group admits ``cost`` on every ``(limiter, key)`` or on none,
    and returns one reservation whose result is the most restrictive (see
    :func:`~spectra_core.rate_limit.combine_results`), holding nothing when rejected.
    """

    async def reserve_all(
        self, parts: Sequence[tuple[RateLimiter, str]], cost: int
    ) -> Reservation: ...


class ReservationBase(abc.ABC):
    """Shared behaviour of reservations: ``allowed`` and use as an async context manager
    (commit on normal exit, release when the block raises)."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def result(self) -> RateLimitResult:
        """The limiter's decision."""

    @abc.abstractmethod
    async def commit(self) -> None:
        """Keep the held cost."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the held cost back."""

    @property
    def allowed(self) -> bool:
        return self.result.allowed

    async def __aenter__(self) -> ReservationBase:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.release()


def check_cost(cost: object) -> int:
    """``cost`` if it is a positive int, else an :class:`InvalidArgumentError`."""
    if type(cost) is not int or cost < 1:
        raise InvalidArgumentError(
            f"rate limit cost must be a positive integer, got {cost!r}; pass cost=1 for one request"
        )
    return cost
