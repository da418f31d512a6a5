"""RedisUser: what every Redis backend shares: a client made lazily on the running
loop (from the shared pool of its URL, or the one given), and errors that name the URL
without its password."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from spectra_core.errors import InvalidArgumentError, StoreError

from ._connection import Lease, check_url, lease, redact

__all__ = ["RedisUser", "describe"]


def describe(client: aioredis.Redis) -> str:
    """``redis://host:port/db`` of a client, for messages (never its password)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


class RedisUser:
    """Base of the Redis backends: ``client()`` on the running loop, ``release()``."""

    def __init__(self, redis: aioredis.Redis | str, *, socket_timeout: float = 5.0) -> None:
        if isinstance(redis, str):
            check_url(redis)
            self.url_shown = redact(redis)
            self._url: str | None = redis
            self._given: aioredis.Redis | None = None
        elif isinstance(redis, aioredis.Redis):
            self.url_shown = describe(redis)
            self._url = None
            self._given = redis
        else:
            raise InvalidArgumentError(
                f"redis must be a URL like redis://127.0.0.1:6379/0 or a redis.asyncio.Redis "
                f"client, got {type(redis).__name__}"
            )
        if isinstance(socket_timeout, bool) or not isinstance(socket_timeout, int | float):
            raise InvalidArgumentError(f"socket_timeout must be seconds, got {socket_timeout!r}")
        if socket_timeout <= 0:
            raise InvalidArgumentError(f"socket_timeout must be above 0, got {socket_timeout}")
        self.socket_timeout = float(socket_timeout)
        self._lease: Lease | None = None

    def client(self) -> aioredis.Redis:
        """The client to use on the running loop."""
        if self._given is not None:
            return self._given
        current = self._lease
        if current is not None and current._loop is asyncio.get_running_loop():
            return current.client
        assert self._url is not None
        self._lease = lease(self._url, socket_timeout=self.socket_timeout)
        return self._lease.client

    async def release(self) -> None:
        """Give the shared pool back (closed with its last user); a given client stays open."""
        current, self._lease = self._lease, None
        if current is not None and current._loop is asyncio.get_running_loop():
            await current.release()

    def error(self, exc: RedisError, action: str) -> StoreError:
        """A StoreError saying what failed against which Redis (no password)."""
        return StoreError(
            f"{action} failed against redis {self.url_shown}: {type(exc).__name__}: {exc}; "
            "check that Redis is running and reachable"
        )
