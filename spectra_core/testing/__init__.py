"""Test helpers for spectra and its plugins: a fake clock and backend conformance suites.

A store plugin proves it honours the store contract by subclassing
:class:`SessionStoreConformance` in its own tests and providing a ``store`` fixture;
a rate limiter plugin subclasses :class:`RateLimiterConformance` and provides ``make_limiter``;
a job queue plugin subclasses :class:`JobQueueConformance` and provides ``make_queue``.
:func:`run_in_forked_child` runs a coroutine in a real forked child process.
"""

from .breaker_conformance import CircuitBreakerConformance
from .clock import FakeClock
from .fork import run_in_forked_child
from .limiter_conformance import RateLimiterConformance
from .providers import GatedProvider
from .queue_conformance import JobQueueConformance
from .samples import every_entry_kind
from .store_conformance import SessionStoreConformance

__all__ = [
    "CircuitBreakerConformance",
    "FakeClock",
    "GatedProvider",
    "JobQueueConformance",
    "RateLimiterConformance",
    "SessionStoreConformance",
    "every_entry_kind",
    "run_in_forked_child",
]
