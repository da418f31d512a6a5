"""Test helpers for spectra and its plugins: a fake clock and backend conformance suites.

A store plugin proves it honours the store contract by subclassing
:class:`SessionStoreConformance` in its own tests and providing a ``store`` fixture.
"""

from .breaker_conformance import CircuitBreakerConformance
from .clock import FakeClock
from .providers import GatedProvider
from .samples import every_entry_kind
from .store_conformance import SessionStoreConformance

__all__ = [
    "CircuitBreakerConformance",
    "FakeClock",
    "GatedProvider",
    "SessionStoreConformance",
    "every_entry_kind",
]
