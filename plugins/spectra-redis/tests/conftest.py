"""Real Redis for the tests: ``$SPECTRA_REDIS_URL`` or redis://127.0.0.1:6379/0.

Each test gets its own key prefix (``prefix``) and its keys are deleted afterwards.
When Redis is unreachable the tests that need it skip, saying why; with
``SPECTRA_REQUIRE_REDIS=1`` (set by .ci/run in CI) they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

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


_WHY_NOT = _reachable()


@pytest.fixture
def redis_url() -> str:
    if _WHY_NOT is not None:
        if REQUIRED:
            pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {_WHY_NOT}")
        pytest.skip(_WHY_NOT)
    return URL


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted when the test ends."""
    name = f"spectra-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{name}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
