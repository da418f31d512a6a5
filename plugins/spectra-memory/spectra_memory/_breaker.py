"""The ``memory`` circuit breaker backend: a DefaultCircuitBreaker per engine."""

from __future__ import annotations

import attrs

from spectra_core import CircuitBreakerOptions, Clock, DefaultCircuitBreaker

__all__ = ["MemoryBreakerOptions", "create_memory_breaker", "memory_breaker"]


@attrs.frozen
class MemoryBreakerOptions(CircuitBreakerOptions):
    """Options of ``[breaker] backend = "memory"``: the common breaker options
    (durations in seconds), state kept in this process."""


def create_memory_breaker(
    options: MemoryBreakerOptions, *, clock: Clock | None = None
) -> DefaultCircuitBreaker:
    """A breaker whose state lives in process memory (``clock`` is for tests)."""
    return DefaultCircuitBreaker.from_options(options, clock=clock)


#: The first release's name (factories of core classes are ``create_<backend>_<kind>``).
memory_breaker = create_memory_breaker
