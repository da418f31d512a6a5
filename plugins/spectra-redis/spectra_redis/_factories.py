"""Factories that build the Redis backends from their config-file options."""

from __future__ import annotations

from spectra_core.config import build_store, parse_config
from spectra_core.errors import ConfigError
from spectra_core.plugins import load_plugins
from spectra_core.store import SessionStore
from spectra_core.workers import JobRetry

from ._breaker import RedisCircuitBreaker
from ._event_log import RedisEventLog
from ._health import RedisHealthCheck
from ._limiter import RedisRateLimiter
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
    "breaker_from_options",
    "cold_store_from_table",
    "event_log_from_options",
    "health_from_options",
    "limiter_from_options",
    "queue_from_options",
    "store_from_options",
]


def cold_store_from_table(table: dict[str, object]) -> SessionStore:
    """The cold store a ``[store.cold]`` table describes (any installed store backend but
    ``redis``); ConfigError lines name the key under ``cold``."""
    if table.get("backend") == "redis":
        raise ConfigError("cold.backend: the cold store must be a durable store, not redis")
    try:
        config = parse_config({"store": table}, "<cold>", load_plugins())
        store: SessionStore = build_store(config, load_plugins())
    except ConfigError as exc:
        raise ConfigError(
            [line.replace("<cold>: $.store", "cold", 1) for line in exc.errors]
        ) from None
    return store


def store_from_options(options: RedisStoreOptions) -> RedisSessionStore:
    """A RedisSessionStore (with its cold store, if ``cold`` is set) from its options."""
    cold = None if options.cold is None else cold_store_from_table(options.cold)
    return RedisSessionStore(
        options.url,
        ttl_seconds=options.ttl,
        cold_store=cold,
        key_prefix=options.key_prefix,
        socket_timeout=options.socket_timeout,
        retry_interval=options.retry_interval,
    )


def limiter_from_options(options: RedisLimiterOptions) -> RedisRateLimiter:
    """A RedisRateLimiter from its options."""
    return RedisRateLimiter(
        options.url,
        options.requests_per_window,
        options.window * 1000,
        key_prefix=options.key_prefix,
        burst_allowance=options.burst_allowance,
        failure_mode="open" if options.failure_mode == "open" else "closed",
        retry_interval=options.retry_interval,
        socket_timeout=options.socket_timeout,
    )


def breaker_from_options(options: RedisBreakerOptions) -> RedisCircuitBreaker:
    """A RedisCircuitBreaker from its options (durations in seconds)."""
    return RedisCircuitBreaker(
        options.url,
        options.failure_threshold,
        options.reset_timeout * 1000,
        options.half_open_max_requests,
        name=options.name,
        key_prefix=options.key_prefix,
        failure_mode="open" if options.failure_mode == "open" else "closed",
        retry_interval=options.retry_interval,
        socket_timeout=options.socket_timeout,
        failure_rate_threshold=options.failure_rate_threshold,
        sliding_window_size=options.sliding_window_size,
        minimum_number_of_calls=options.minimum_number_of_calls,
        slow_call_duration_ms=_ms(options.slow_call_duration),
        slow_call_rate_threshold=options.slow_call_rate_threshold,
        max_half_open_ms=_ms(options.max_half_open),
    )


def queue_from_options(options: RedisQueueOptions) -> RedisJobQueue:
    """A RedisJobQueue from its options (durations in seconds)."""
    return RedisJobQueue(
        options.url,
        key_prefix=options.key_prefix,
        lease_timeout=options.lease_timeout,
        retry=JobRetry(
            max_attempts=options.max_attempts,
            wait_initial=options.wait_initial,
            wait_max=options.wait_max,
            wait_exp_base=options.wait_exp_base,
        ),
        keep_finished=options.keep_finished,
        poll_interval=options.poll_interval,
        socket_timeout=options.socket_timeout,
    )


def health_from_options(options: RedisHealthOptions) -> RedisHealthCheck:
    """A RedisHealthCheck from its options."""
    return RedisHealthCheck(options.url, timeout=options.timeout)


def event_log_from_options(options: RedisEventLogOptions) -> RedisEventLog:
    """A RedisEventLog from its options."""
    return RedisEventLog(
        options.url,
        max_events=options.max_events,
        retention=options.retention,
        key_prefix=options.key_prefix,
        socket_timeout=options.socket_timeout,
        block_timeout=options.block_timeout,
        abandon_after=options.abandon_after,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
