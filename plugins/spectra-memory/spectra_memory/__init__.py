"""In-memory backends for spectra (backend name ``memory``)."""

from ._breaker import MemoryBreakerOptions, memory_breaker
from ._store import InMemorySessionStore, MemoryStoreOptions

__all__ = [
    "InMemorySessionStore",
    "MemoryBreakerOptions",
    "MemoryStoreOptions",
    "memory_breaker",
]
