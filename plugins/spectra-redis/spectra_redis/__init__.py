"""Redis backends for spectra (backend name ``redis``)."""

from ._connection import redact
from ._limiter import RedisLimiterGroup, RedisRateLimiter
from ._options import RedisLimiterOptions, RedisStoreOptions
from ._store import RedisSessionStore

__all__ = [
    "RedisLimiterGroup",
    "RedisLimiterOptions",
    "RedisRateLimiter",
    "RedisSessionStore",
    "RedisStoreOptions",
    "redact",
]
