"""Real Redis for the tests: ``$SPECTRA_REDIS_URL`` or redis://127.0.0.1:6379/0.

Each test gets its own key prefix (``prefix``) and its keys are deleted afterwards.
When Redis is unreachable the tests that need it skip, saying why; with
``SPECTRA_REQUIRE_REDIS=1`` (set by .ci/run in CI) they fail instead.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from _redis_env import REQUIRED, URL, WHY_NOT
from _server import RedisServer


@pytest.fixture
def redis_url() -> str:
    if WHY_NOT is not None:
        if REQUIRED:
            pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {WHY_NOT}")
        pytest.skip(WHY_NOT)
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free loopback port (password ``s3cret``),
    to kill and restart."""
    if shutil.which("redis-server") is None:
        why = "redis-server is not on PATH; the fault tests start their own"
        if REQUIRED:
            pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {why}")
        pytest.skip(why)
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.kill()
