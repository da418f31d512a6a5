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
    RedisStoreOptions,
)
from ._store import RedisSessionStore

__all__ = [
    "HealthResult",
    "RedisBreakerOptions",
    "RedisCircuitBreaker",
    "RedisEventLog",
    "RedisEventLogOptions",
    "RedisHealthCheck",
    "RedisHealthOptions",
    "RedisLimiterGroup",
    "RedisLimiterOptions",
    "RedisRateLimiter",
    "RedisSessionStore",
    "RedisStoreOptions",
    "redact",
]
