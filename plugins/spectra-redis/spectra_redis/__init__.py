"""Redis backends for spectra (backend name ``redis``)."""

from ._breaker import RedisCircuitBreaker
from ._connection import redact
from ._health import HealthResult, RedisHealthCheck
from ._limiter import RedisLimiterGroup, RedisRateLimiter
from ._options import (
    RedisBreakerOptions,
    RedisHealthOptions,
    RedisLimiterOptions,
    RedisQueueOptions,
    RedisStoreOptions,
)
from ._queue import RedisJobQueue
from ._store import RedisSessionStore

__all__ = [
    "HealthResult",
    "RedisBreakerOptions",
    "RedisCircuitBreaker",
    "RedisHealthCheck",
    "RedisHealthOptions",
    "RedisJobQueue",
    "RedisLimiterGroup",
    "RedisLimiterOptions",
    "RedisQueueOptions",
    "RedisRateLimiter",
    "RedisSessionStore",
    "RedisStoreOptions",
    "redact",
]
