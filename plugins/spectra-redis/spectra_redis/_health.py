"""RedisHealthCheck: PING with a timeout, latency reported."""

from __future__ import annotations

import asyncio
import time

import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ._client import RedisUser

__all__ = ["HealthResult", "RedisHealthCheck"]


@attrs.frozen
class HealthResult:
    """One check: ``ok``, the round trip in milliseconds (None if no answer), and what
    went wrong."""

    name: str
    ok: bool
    latency_ms: float | None
    detail: str = ""


class RedisHealthCheck(RedisUser):
    """Sends PING and waits at most ``timeout`` seconds for PONG."""

    name = "redis"

    def __init__(self, redis: aioredis.Redis | str, *, timeout: float = 1.0) -> None:
        super().__init__(redis, socket_timeout=max(timeout, 0.001))
        self.timeout = timeout

    async def check(self) -> HealthResult:
        """PING; never raises for a Redis that is down or slow, says so instead."""
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self.client().ping()
        except TimeoutError:
            return HealthResult(
                self.name, False, None, f"redis {self.url_shown}: no PONG in {self.timeout:g}s"
            )
        except RedisError as exc:
            return HealthResult(
                self.name, False, None, f"redis {self.url_shown}: {type(exc).__name__}: {exc}"
            )
        return HealthResult(self.name, True, (time.perf_counter() - start) * 1000)

    async def aclose(self) -> None:
        await self.release()
