"""Test helpers for spectra and its plugins: a fake clock and backend conformance suites.

A store plugin proves it honours the store contract by subclassing
:class:`SessionStoreConformance` in its own tests (``make_store``, and a
:class:`StoreRecipe` for durable stores);
a rate limiter plugin subclasses :class:`RateLimiterConformance` and provides ``make_limiter``;
an event log plugin subclasses :class:`EventLogConformance`, provides ``make_log`` and runs
:func:`run_event_log_model` (a hypothesis state machine against a reference model);
a job queue plugin subclasses :class:`JobQueueConformance` and provides ``make_queue``.
:func:`run_in_forked_child` runs a coroutine in a real forked child process.
"""

from .breaker_conformance import CircuitBreakerConformance
from .clock import FakeClock
from .event_log_conformance import EventLogConformance
from .event_log_model import run_event_log_model
from .fork import run_in_forked_child
from .limiter_conformance import RateLimiterConformance
from .providers import GatedProvider
from .queue_conformance import JobQueueConformance
from .recipe import StoreRecipe
from .samples import every_entry_kind
from .store_conformance import SessionStoreConformance

__all__ = [
    "CircuitBreakerConformance",
    "EventLogConformance",
    "FakeClock",
    "GatedProvider",
    "JobQueueConformance",
    "RateLimiterConformance",
    "SessionStoreConformance",
    "StoreRecipe",
    "every_entry_kind",
    "run_event_log_model",
    "run_in_forked_child",
]
