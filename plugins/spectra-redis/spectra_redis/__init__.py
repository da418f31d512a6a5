"""Redis backends for spectra (backend name ``redis``)."""

from ._connection import redact
from ._options import RedisStoreOptions
from ._store import RedisSessionStore

__all__ = ["RedisSessionStore", "RedisStoreOptions", "redact"]
