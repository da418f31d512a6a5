"""Where the tests find Redis, and whether they may skip without it."""

from __future__ import annotations

import os

import redis

URL = os.environ.get("SPECTRA_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("SPECTRA_REQUIRE_REDIS") == "1"


def _reachable() -> str | None:
    """None when Redis answers PING, else why not."""
    try:
        client = redis.Redis.from_url(URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"Redis at {URL} is unreachable ({exc}); start one or set SPECTRA_REDIS_URL"
    return None


#: Why the tests cannot reach Redis (None: they can).
WHY_NOT = _reachable()
