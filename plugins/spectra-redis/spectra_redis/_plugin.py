"""Registers the ``redis`` backends with spectra."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._factories import (
    breaker_from_options,
    event_log_from_options,
    health_from_options,
    limiter_from_options,
    queue_from_options,
    store_from_options,
)
from ._options import (
    RedisBreakerOptions,
    RedisEventLogOptions,
    RedisHealthOptions,
    RedisLimiterOptions,
    RedisQueueOptions,
    RedisStoreOptions,
)


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "redis",
        store_from_options,
        RedisStoreOptions,
        description="Sessions in Redis (sliding TTL), optionally written through to a cold store.",
    )


@hookimpl
def spectra_register_rate_limiters(register: Register) -> None:
    register(
        "redis",
        limiter_from_options,
        RedisLimiterOptions,
        description="Exact sliding-window rate limiter shared by every process (Lua, Redis time).",
    )


@hookimpl
def spectra_register_circuit_breakers(register: Register) -> None:
    register(
        "redis",
        breaker_from_options,
        RedisBreakerOptions,
        description="Circuit breaker whose state every process using its name shares.",
    )


@hookimpl
def spectra_register_health_checks(register: Register) -> None:
    register(
        "redis",
        health_from_options,
        RedisHealthOptions,
        description="PING Redis with a timeout and report the latency.",
    )


@hookimpl
def spectra_register_event_logs(register: Register) -> None:
    register(
        "redis",
        event_log_from_options,
        RedisEventLogOptions,
        description="Run events in Redis Streams: any replica can serve or resume a run's stream.",
    )


@hookimpl
def spectra_register_job_queues(register: Register) -> None:
    register(
        "redis",
        queue_from_options,
        RedisQueueOptions,
        description="Jobs on Redis Streams shared by every worker process (leases, "
        "retries, dead letters).",
    )
