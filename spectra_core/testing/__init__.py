"""Test helpers for spectra and its plugins: a fake clock and backend conformance suites.

A store plugin proves it honours the store contract by subclassing
:class:`SessionStoreConformance` in its own tests and providing a ``store`` fixture;
a rate limiter plugin subclasses :class:`RateLimiterConformance` and provides ``make_limiter``.
"""

from .clock import FakeClock
from .limiter_conformance import RateLimiterConformance
from .samples import every_entry_kind
from .store_conformance import SessionStoreConformance

__all__ = [
    "FakeClock",
    "RateLimiterConformance",
    "SessionStoreConformance",
    "every_entry_kind",
]
