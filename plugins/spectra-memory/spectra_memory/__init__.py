"""In-memory backends for spectra (backend name ``memory``)."""

from ._breaker import MemoryBreakerOptions, memory_breaker
from ._limiter import MemoryLimiterOptions, create_memory_limiter
from ._queue import MemoryJobQueue, MemoryQueueOptions
from ._store import InMemorySessionStore, MemoryStoreOptions

__all__ = [
    "InMemorySessionStore",
    "MemoryBreakerOptions",
    "MemoryJobQueue",
    "MemoryLimiterOptions",
    "MemoryQueueOptions",
    "MemoryStoreOptions",
    "create_memory_limiter",
    "memory_breaker",
]
