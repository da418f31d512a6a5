"""The circuit breaker conformance suite.

Subclass it in a plugin's tests and provide a ``make_breaker`` fixture: a callable taking
the keyword arguments of :class:`~spectra_core.DefaultCircuitBreaker` (``failure_threshold``,
``reset_timeout_ms``, ``half_open_max_requests``, ``excluded_exceptions``,
``failure_rate_threshold``, ``sliding_window_size``, ``minimum_number_of_calls``,
``slow_call_duration_ms``, ``slow_call_rate_threshold``, ``max_half_open_ms``, ``name``)
and returning a fresh breaker whose time comes from the ``clock`` fixture::

    class TestMyBreaker(CircuitBreakerConformance):
        @pytest.fixture
        def make_breaker(self, clock):
            return lambda **kwargs: MyBreaker(clock=clock, **kwargs)

Only the public contract is exercised. A breaker that decides over the network also
overrides :meth:`CircuitBreakerConformance.settle` (see there). Requires pytest-asyncio.
"""

from __future__ import annotations

from ._breaker_states import BreakerStatesConformance
from ._breaker_window import BreakerWindowConformance

__all__ = ["CircuitBreakerConformance"]


class CircuitBreakerConformance(BreakerStatesConformance, BreakerWindowConformance):
    """The behaviour every circuit breaker must show. See the module docstring."""
