"""File-system session store for spectra (backend name ``fs``): one append-only JSON
Lines file per session, crash-safe, safe across processes."""

from ._store import Durability, FileSystemSessionStore, FsStoreOptions

__all__ = ["Durability", "FileSystemSessionStore", "FsStoreOptions"]
