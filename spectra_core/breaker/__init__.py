"""Circuit breakers: the :class:`CircuitBreaker` protocol and :class:`DefaultCircuitBreaker`.

See docs/circuit-breaker.md for the states, every option and the listener contract.
"""

from ._default import DefaultCircuitBreaker
from ._options import CircuitBreakerOptions
from ._protocol import BreakerListener, BreakerMetrics, CircuitBreaker, CircuitState

__all__ = [
    "BreakerListener",
    "BreakerMetrics",
    "CircuitBreaker",
    "CircuitBreakerOptions",
    "CircuitState",
    "DefaultCircuitBreaker",
]
