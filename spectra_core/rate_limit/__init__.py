"""Rate limiting: the :class:`RateLimiter` protocol, an exact in-process sliding window
(:class:`LocalRateLimiter`) and an all-or-nothing chain (:class:`CompositeRateLimiter`).

See ``docs/rate-limiting.md``.
"""

from ._composite import DIMENSIONS, CompositeRateLimiter, KeyFunc, combine_results
from ._local import DEFAULT_MAX_KEYS, LocalRateLimiter
from ._types import (
    AtomicGroup,
    RateLimiter,
    RateLimitRequest,
    RateLimitResult,
    Reservation,
    ReservationBase,
)

__all__ = [
    "DEFAULT_MAX_KEYS",
    "DIMENSIONS",
    "AtomicGroup",
    "CompositeRateLimiter",
    "KeyFunc",
    "LocalRateLimiter",
    "RateLimitRequest",
    "RateLimitResult",
    "RateLimiter",
    "Reservation",
    "ReservationBase",
    "combine_results",
]
