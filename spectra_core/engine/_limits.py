"""Rate-limit admission for a run: reserve first, commit once the run is admitted."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Admission", "admit_rate_limit"]


@attrs.define
class Admission:
    """The limiter's answer for one run; ``commit`` or ``release`` it exactly once."""

    rejected: bool = False
    retry_after: float = 0.0
    reason: str = ""
    _reservation: Any = None

    async def commit(self) -> None:
        if self._reservation is not None:
            await self._reservation.commit()
            self._reservation = None

    async def release(self) -> None:
        if self._reservation is not None:
            await self._reservation.release()
            self._reservation = None


async def admit_rate_limit(
    limiter: Any,
    *,
    user_id: str,
    tenant_id: str | None,
    provider: str | None,
    session_id: str | None,
) -> Admission:
    """Ask ``limiter`` (None: no limit) whether this run may start."""
    if limiter is None:
        return Admission()
    result = await limiter.check_limit(user_id)
    if result.allowed:
        return Admission()
    return Admission(True, float(result.retry_after), "limit")
