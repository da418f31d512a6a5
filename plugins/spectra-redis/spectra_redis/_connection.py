"""One Redis client per URL and event loop, shared by every backend that uses it.

Backends take a lease (:func:`lease`) and give it back with :meth:`Lease.release`; the
client's connection pool is closed when its last lease is released. ``redact`` shows a
URL without its password, for errors and logs.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import redis.asyncio as aioredis

from spectra_core.errors import InvalidArgumentError

__all__ = ["DEFAULT_URL", "Lease", "lease", "redact"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_SCHEMES = ("redis", "rediss", "unix")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user names are kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable redis url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: object) -> str:
    """``url`` if it is a redis://, rediss:// or unix:// URL, else InvalidArgumentError."""
    if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
        shown = redact(url) if isinstance(url, str) else repr(url)
        raise InvalidArgumentError(
            f"redis url must start with redis://, rediss:// or unix://, got {shown!r}; "
            f"e.g. {DEFAULT_URL}"
        )
    return url


@attrs.define(eq=False)
class _Shared:
    client: aioredis.Redis
    users: int = 0


# (url, socket_timeout) -> client, per event loop; a loop's table goes with the loop
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, float], _Shared]]
_CLIENTS = weakref.WeakKeyDictionary()


@attrs.define(eq=False)
class Lease:
    """A backend's use of a shared client; ``release`` once when the backend closes."""

    url: str
    client: aioredis.Redis
    _key: tuple[str, float]
    _loop: asyncio.AbstractEventLoop
    _released: bool = False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        table = _CLIENTS.get(self._loop, {})
        shared = table.get(self._key)
        if shared is None or shared.client is not self.client:
            return
        shared.users -= 1
        if shared.users <= 0:
            del table[self._key]
            await self.client.aclose()


#: Connections of one shared pool.
MAX_CONNECTIONS = 64


def lease(
    url: str, *, socket_timeout: float = 5.0, max_connections: int = MAX_CONNECTIONS, **kwargs: Any
) -> Lease:
    """The shared client of ``url`` on the running loop (made on first use)."""
    check_url(url)
    loop = asyncio.get_running_loop()
    key = (url, float(socket_timeout))
    table = _CLIENTS.setdefault(loop, {})
    shared = table.get(key)
    if shared is None:
        # a blocking pool: a burst of calls waits for a free connection (up to the
        # timeout) instead of failing with "too many connections"
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            decode_responses=False,
            **kwargs,
        )
        client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        shared = table[key] = _Shared(client)
    shared.users += 1
    return Lease(url, shared.client, key, loop)


def pool_count() -> int:
    """How many shared clients are open on the running loop (for tests)."""
    return len(_CLIENTS.get(asyncio.get_running_loop(), {}))
