"""Redis backends for spectra (backend name ``redis``)."""

from ._breaker import RedisCircuitBreaker
from ._connection import redact
from ._event_log import RedisEventLog
from ._health import HealthResult, RedisHealthCheck
from ._limiter import RedisLimiterGroup, RedisRateLimiter
from ._options import (
    RedisBreakerOptions,
    RedisEventLogOptions,
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
    "RedisEventLog",
    "RedisEventLogOptions",
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
