"""In-memory backends for spectra (backend name ``memory``)."""

from ._breaker import MemoryBreakerOptions, create_memory_breaker
from ._breaker import memory_breaker as memory_breaker  # the first release's name
from ._event_log import MemoryEventLog, MemoryEventLogOptions
from ._limiter import MemoryLimiterOptions, create_memory_limiter
from ._queue import MemoryJobQueue, MemoryQueueOptions
from ._store import InMemorySessionStore, MemoryStoreOptions

__all__ = [
    "InMemorySessionStore",
    "MemoryBreakerOptions",
    "MemoryEventLog",
    "MemoryEventLogOptions",
    "MemoryJobQueue",
    "MemoryLimiterOptions",
    "MemoryQueueOptions",
    "MemoryStoreOptions",
    "create_memory_breaker",
    "create_memory_limiter",
]
