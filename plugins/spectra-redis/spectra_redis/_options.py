"""RedisStoreOptions: the ``[store] backend = "redis"`` settings."""

from __future__ import annotations

from typing import Any

import attrs

from spectra_core.breaker import CircuitBreakerOptions
from spectra_core.durations import Duration, parse_duration
from spectra_core.event_log import EventLogOptions

from ._connection import DEFAULT_URL

__all__ = [
    "RedisBreakerOptions",
    "RedisEventLogOptions",
    "RedisHealthOptions",
    "RedisLimiterOptions",
    "RedisQueueOptions",
    "RedisStoreOptions",
]


@attrs.frozen(kw_only=True)
class RedisStoreOptions:
    """Options of the ``redis`` session store.

    - ``url``: the Redis server (``redis://``, ``rediss://`` or ``unix://``).
    - ``ttl``: how long a session stays in Redis after its last load or save (sliding;
      ``0``: forever).
    - ``key_prefix``: the prefix of every key (several applications can share a server).
    - ``socket_timeout``: how long one Redis call may take before it fails.
    - ``retry_interval``: with a cold store, how long Redis is left alone after a failure.
    - ``cold``: optional ``[store.cold]`` table, any other store backend with its options
      (``backend = "sqlite"``, ``path = ...``): saves are written through to it.
    """

    url: str = DEFAULT_URL
    ttl: Duration = attrs.field(default=Duration(3600.0), converter=parse_duration)
    key_prefix: str = "spectra"
    socket_timeout: Duration = attrs.field(default=Duration(5.0), converter=parse_duration)
    retry_interval: Duration = attrs.field(default=Duration(1.0), converter=parse_duration)
    cold: dict[str, Any] | None = None


def _failure_mode(value: object) -> str:
    if value not in ("open", "closed"):
        raise ValueError(f"failure_mode must be 'open' or 'closed', got {value!r}")
    return str(value)


@attrs.frozen(kw_only=True)
class RedisLimiterOptions:
    """Options of the ``redis`` rate limiter (``[[limiter]] backend = "redis"``).

    - ``url``, ``socket_timeout``: as for the store.
    - ``requests_per_window``, ``window``, ``burst_allowance``: as for ``memory``.
    - ``key_prefix``: prefix of the limiter's keys (the limits are part of the key too).
    - ``failure_mode``: when Redis cannot be asked, ``"open"`` admits, ``"closed"``
      rejects with ``retry_after = retry_interval``.
    """

    requests_per_window: int
    window: Duration = attrs.field(converter=parse_duration)
    burst_allowance: int = 0
    url: str = DEFAULT_URL
    key_prefix: str = "rl"
    failure_mode: str = attrs.field(default="open", validator=lambda _, __, v: _failure_mode(v))
    retry_interval: Duration = attrs.field(default=Duration(1.0), converter=parse_duration)
    socket_timeout: Duration = attrs.field(default=Duration(5.0), converter=parse_duration)


@attrs.frozen(kw_only=True)
class RedisBreakerOptions(CircuitBreakerOptions):
    """Options of ``[breaker] backend = "redis"``: the common breaker options, plus

    - ``url``, ``socket_timeout``: as for the store.
    - ``name``: the breaker's name; processes using the same name share one state.
    - ``key_prefix``: prefix of the breaker's key.
    - ``failure_mode``: when Redis cannot be asked, ``"open"`` lets calls through
      unrecorded, ``"closed"`` fails them fast (``retry_after = retry_interval``).
    """

    url: str = DEFAULT_URL
    name: str = "breaker"
    key_prefix: str = "cb"
    failure_mode: str = attrs.field(default="open", validator=lambda _, __, v: _failure_mode(v))
    retry_interval: Duration = attrs.field(default=Duration(1.0), converter=parse_duration)
    socket_timeout: Duration = attrs.field(default=Duration(5.0), converter=parse_duration)


@attrs.frozen(kw_only=True)
class RedisHealthOptions:
    """Options of ``[[health]] backend = "redis"``: ``url``, and ``timeout`` (how long
    the PING may take before the check fails)."""

    url: str = DEFAULT_URL
    timeout: Duration = attrs.field(default=Duration(1.0), converter=parse_duration)


@attrs.frozen(kw_only=True)
class RedisEventLogOptions(EventLogOptions):
    """Options of ``[event_log] backend = "redis"``: ``max_events`` and ``retention`` as
    for every event log, plus

    - ``url``, ``socket_timeout``, ``key_prefix``: as for the store.
    - ``block_timeout``: how long the process's one live-reading ``XREAD BLOCK`` waits
      before it is sent again (below ``socket_timeout``).
    - ``abandon_after``: a run with no new event for this long (its writer died before
      ``run_end``) is deleted by Redis; ``0``: never.
    """

    url: str = DEFAULT_URL
    key_prefix: str = "spectra"
    socket_timeout: Duration = attrs.field(default=Duration(5.0), converter=parse_duration)
    block_timeout: Duration = attrs.field(default=Duration(1.0), converter=parse_duration)
    abandon_after: Duration = attrs.field(default=Duration(86_400.0), converter=parse_duration)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.block_timeout < self.socket_timeout:
            raise ValueError(
                f"block_timeout must be above 0 and below socket_timeout "
                f"({self.socket_timeout}s), got {self.block_timeout}s"
            )


def _positive(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class RedisQueueOptions:
    """Options of the ``redis`` job queue (``[queue] backend = "redis"``).

    - ``url``, ``socket_timeout``: as for the store.
    - ``key_prefix``: prefix of the queue's keys; workers and producers sharing a queue
      use the same one (put a ``{hash tag}`` in it on Redis Cluster).
    - ``lease_timeout``: how long a worker holds a job without renewing; a dead worker's
      job is taken by another worker this long after its last renewal.
    - ``max_attempts``, ``wait_initial``, ``wait_max``, ``wait_exp_base``: as for
      ``memory``.
    - ``keep_finished``: finished jobs remembered for ``job()`` and idempotency keys.
    - ``poll_interval``: the longest an idle worker blocks before it looks for expired
      leases (new jobs wake it at once).
    """

    url: str = DEFAULT_URL
    key_prefix: str = "spectra:queue"
    lease_timeout: Duration = attrs.field(
        default=Duration(30.0), converter=parse_duration, validator=_positive
    )
    max_attempts: int = attrs.field(default=5, validator=_positive)
    wait_initial: Duration = attrs.field(default=Duration(1.0), converter=parse_duration)
    wait_max: Duration = attrs.field(default=Duration(60.0), converter=parse_duration)
    wait_exp_base: float = 2.0
    keep_finished: int = attrs.field(default=10_000, validator=_positive)
    poll_interval: Duration = attrs.field(
        default=Duration(1.0), converter=parse_duration, validator=_positive
    )
    socket_timeout: Duration = attrs.field(default=Duration(5.0), converter=parse_duration)
