"""In-memory backends for spectra (backend name ``memory``)."""

from ._store import InMemorySessionStore, MemoryStoreOptions

__all__ = ["InMemorySessionStore", "MemoryStoreOptions"]
