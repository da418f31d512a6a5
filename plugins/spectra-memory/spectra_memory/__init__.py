"""In-memory backends for spectra (backend name ``memory``)."""

from ._limiter import MemoryLimiterOptions, create_memory_limiter
from ._store import InMemorySessionStore, MemoryStoreOptions

__all__ = [
    "InMemorySessionStore",
    "MemoryLimiterOptions",
    "MemoryStoreOptions",
    "create_memory_limiter",
]
