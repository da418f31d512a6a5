"""SQLite session store for spectra (backend name ``sqlite``)."""

from ._options import SYNCHRONOUS_LEVELS, SQLiteStoreOptions
from ._options import SqliteStoreOptions as SqliteStoreOptions  # the first release's name
from ._schema import SCHEMA_VERSION
from ._store import SQLiteSessionStore

__all__ = [
    "SCHEMA_VERSION",
    "SYNCHRONOUS_LEVELS",
    "SQLiteSessionStore",
    "SQLiteStoreOptions",
]
