"""The ``memory`` rate limiter backend: options and factory for :class:`LocalRateLimiter`."""

from __future__ import annotations

import attrs

from spectra_core import Clock
from spectra_core.durations import Duration
from spectra_core.rate_limit import DEFAULT_MAX_KEYS, LocalRateLimiter

__all__ = ["MemoryLimiterOptions", "create_memory_limiter"]


@attrs.frozen
class MemoryLimiterOptions:
    """Options of the ``memory`` rate limiter (``[[limiter]] backend = "memory"``).

    ``requests_per_window``: cost admitted per key in any window (a positive integer).
    ``window``: the sliding window length (``"1m"``, ``"30s"``, or seconds).
    ``burst_allowance``: extra cost admitted on top of ``requests_per_window`` (default 0).
    ``max_keys``: most keys tracked at once (default 100,000); see ``LocalRateLimiter``.
    """

    requests_per_window: int
    window: Duration
    burst_allowance: int = 0
    max_keys: int = DEFAULT_MAX_KEYS


def create_memory_limiter(
    options: MemoryLimiterOptions, *, clock: Clock | None = None
) -> LocalRateLimiter:
    """An exact sliding-window rate limiter in process memory, per process."""
    return LocalRateLimiter(
        options.requests_per_window,
        options.window * 1000,
        options.burst_allowance,
        clock=clock,
        max_keys=options.max_keys,
    )
