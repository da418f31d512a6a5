"""In-memory backends for spectra (backend name ``memory``)."""

from ._breaker import MemoryBreakerOptions, memory_breaker
from ._event_log import MemoryEventLog, MemoryEventLogOptions
from ._limiter import MemoryLimiterOptions, create_memory_limiter
from ._store import InMemorySessionStore, MemoryStoreOptions

__all__ = [
    "InMemorySessionStore",
    "MemoryBreakerOptions",
    "MemoryEventLog",
    "MemoryEventLogOptions",
    "MemoryLimiterOptions",
    "MemoryStoreOptions",
    "create_memory_limiter",
    "memory_breaker",
]
