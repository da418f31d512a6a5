"""Registers the ``memory`` backends with spectra."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._breaker import MemoryBreakerOptions, create_memory_breaker
from ._event_log import MemoryEventLog, MemoryEventLogOptions
from ._limiter import MemoryLimiterOptions, create_memory_limiter
from ._queue import MemoryJobQueue, MemoryQueueOptions
from ._store import InMemorySessionStore, MemoryStoreOptions


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "memory",
        InMemorySessionStore.from_options,
        MemoryStoreOptions,
        description="Sessions in process memory, lost on restart.",
    )


@hookimpl
def spectra_register_circuit_breakers(register: Register) -> None:
    register(
        "memory",
        create_memory_breaker,
        MemoryBreakerOptions,
        description="Circuit breaker with its state in process memory.",
    )


@hookimpl
def spectra_register_rate_limiters(register: Register) -> None:
    register(
        "memory",
        create_memory_limiter,
        MemoryLimiterOptions,
        description="Exact sliding-window rate limiter in process memory, per process.",
    )


@hookimpl
def spectra_register_event_logs(register: Register) -> None:
    register(
        "memory",
        MemoryEventLog.from_options,
        MemoryEventLogOptions,
        description="Run event log in process memory, for one process.",
    )


@hookimpl
def spectra_register_job_queues(register: Register) -> None:
    register(
        "memory",
        MemoryJobQueue.from_options,
        MemoryQueueOptions,
        description="Job queue in process memory, for one process; lost on restart.",
    )
