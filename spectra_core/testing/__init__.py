"""Test helpers for spectra and its plugins: a fake clock and backend conformance suites.

A store plugin proves it honours the store contract by subclassing
:class:`SessionStoreConformance` in its own tests (``make_store``, and a
:class:`StoreRecipe` for durable stores);
a rate limiter plugin subclasses :class:`RateLimiterConformance` and provides ``make_limiter``.
:func:`run_in_forked_child` runs a coroutine in a real forked child process.
"""

from .breaker_conformance import CircuitBreakerConformance
from .clock import FakeClock
from .fork import run_in_forked_child
from .limiter_conformance import RateLimiterConformance
from .providers import GatedProvider
from .recipe import StoreRecipe
from .samples import every_entry_kind
from .store_conformance import SessionStoreConformance

__all__ = [
    "CircuitBreakerConformance",
    "FakeClock",
    "GatedProvider",
    "RateLimiterConformance",
    "SessionStoreConformance",
    "StoreRecipe",
    "every_entry_kind",
    "run_in_forked_child",
]
