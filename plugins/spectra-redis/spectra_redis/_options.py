"""RedisStoreOptions: the ``[store] backend = "redis"`` settings."""

from __future__ import annotations

from typing import Any

import attrs

from spectra_core.durations import Duration, parse_duration

from ._connection import DEFAULT_URL

__all__ = ["RedisStoreOptions"]


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
