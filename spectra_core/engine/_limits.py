"""Rate-limit admission for a run: reserve first, commit once the run is admitted, so a
run refused later (capacity, busy) never burns quota."""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ..rate_limit import CompositeRateLimiter, RateLimiter, RateLimitRequest, Reservation

__all__ = ["Admission", "AnyRateLimiter", "admit_rate_limit"]

#: A composite is keyed on the request's dimensions; a single limiter on the user id.
AnyRateLimiter: TypeAlias = RateLimiter | CompositeRateLimiter


@attrs.define
class Admission:
    """The limiter's answer for one run; ``commit`` or ``release`` it exactly once."""

    rejected: bool = False
    retry_after: float = 0.0
    remaining: int | None = None
    _reservation: Reservation | None = None

    async def commit(self) -> None:
        if self._reservation is not None:
            await self._reservation.commit()
            self._reservation = None

    async def release(self) -> None:
        if self._reservation is not None:
            await self._reservation.release()
            self._reservation = None


async def admit_rate_limit(
    limiter: AnyRateLimiter | None,
    *,
    user_id: str,
    tenant_id: str | None,
    provider: str | None,
    session_id: str | None,
) -> Admission:
    """Reserve one request from ``limiter`` (None: no limit)."""
    if limiter is None:
        return Admission()
    if isinstance(limiter, CompositeRateLimiter):
        request = RateLimitRequest(user_id, tenant_id, provider, session_id)
        reservation: Reservation = await limiter.reserve(request)
    else:
        reservation = await limiter.reserve(user_id)
    result = reservation.result
    if not result.allowed:
        await reservation.release()
        return Admission(True, result.retry_after, result.remaining)
    return Admission(False, 0.0, result.remaining, reservation)
