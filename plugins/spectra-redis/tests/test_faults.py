"""Faults with a redis-server of the test's own: killed mid-run, restarted empty, slow.

With a cold store no acknowledged entry is lost and sessions load throughout; without
one an outage is a clear StoreError naming the URL (never the password). The limiter
and the breaker fail in their configured direction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from _server import RedisServer

from spectra_core import CircuitOpenError, MessageEntry, SessionManager, StoreError
from spectra_core.testing import FakeClock
from spectra_redis import RedisCircuitBreaker, RedisRateLimiter, RedisSessionStore
from spectra_sqlite import SQLiteSessionStore


def _texts(session: object) -> list[str]:
    return [e.message.text for e in session.entries if isinstance(e, MessageEntry)]  # type: ignore[attr-defined]


async def _slow_down(url: str, seconds: float) -> None:
    """Make the server busy for ``seconds`` (DEBUG SLEEP on a connection of its own),
    without waiting for it."""
    client = aioredis.Redis.from_url(url)
    conn = await client.connection_pool.get_connection()
    await conn.send_command("DEBUG", "SLEEP", seconds)
    await client.connection_pool.release(conn)
    await client.aclose()


async def test_cold_store_keeps_every_acknowledged_entry_through_kill_and_restart(
    server: RedisServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    cold = SQLiteSessionStore(tmp_path / "cold.db", synchronous="normal")
    store = RedisSessionStore(
        server.url, cold_store=cold, socket_timeout=0.5, retry_interval=5, clock=clock
    )
    manager = SessionManager(store)
    acked: list[str] = []
    async with store:
        s = await manager.create(session_id="kept")

        async def save(n: int) -> None:
            nonlocal s
            for _ in range(n):
                text = f"m{len(acked)}"
                manager.append_message(s, text)
                await manager.save(s)
                acked.append(text)
                assert _texts(await manager.load(s.id)) == acked  # loads throughout

        await save(10)
        assert not store.degraded
        server.kill()  # mid-run: Redis and everything in it is gone
        await save(10)
        assert store.degraded
        with pytest.raises(StoreError, match="degraded") as info:
            await store.ping()
        assert "s3cret" not in str(info.value)
        server.start()  # back, empty
        await save(3)  # still within retry_interval: the cold store serves alone
        clock.advance(5)
        await save(10)  # Redis is tried again, the session is warmed from the cold store
        assert not store.degraded
        await store.ping()
        hot = await store._hot().load(s.id)
        assert hot is not None  # [header, the entries' JSON lines]
        assert len(hot) == 2 and len(hot[1].split(b"\n")) == len(acked)
        s = await manager.load(s.id)
        assert _texts(s) == acked
        assert _texts(await cold.load(s.id)) == acked
        assert (await manager.load(s.id, tail=2)).entries == s.entries[-2:]


async def test_a_stale_hot_copy_left_by_an_outage_is_never_served(
    server: RedisServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    cold = SQLiteSessionStore(tmp_path / "cold.db", synchronous="normal")
    store = RedisSessionStore(
        server.url, cold_store=cold, socket_timeout=0.2, retry_interval=1, clock=clock
    )
    manager = SessionManager(store)
    async with store:
        s = await manager.create(session_id="stale")
        manager.append_message(s, "first")
        await manager.save(s)
        await _slow_down(server.url, 1.0)  # slow, not dead: the hot copy stays behind
        manager.append_message(s, "second")
        await manager.save(s)  # acknowledged by the cold store; Redis timed out
        assert store.degraded
        clock.advance(1)
        loaded = await manager.load(s.id)
        assert _texts(loaded) == ["first", "second"]


async def test_without_a_cold_store_an_outage_is_a_store_error_naming_the_url(
    server: RedisServer,
) -> None:
    store = RedisSessionStore(server.url, socket_timeout=0.5)
    manager = SessionManager(store)
    async with store:
        s = await manager.create()
        server.kill()
        manager.append_message(s, "lost")
        with pytest.raises(StoreError) as info:
            await manager.save(s)
        message = str(info.value)
        assert f"127.0.0.1:{server.port}" in message
        assert "s3cret" not in message and "***" in message
        with pytest.raises(StoreError):
            await manager.load(s.id)
        server.start()
        with pytest.raises(Exception, match="not found"):
            await manager.load(s.id)  # restarted empty: Redis was the store


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_limiter_fails_in_its_configured_direction(server: RedisServer, mode: str) -> None:
    limiter = RedisRateLimiter(
        server.url, 1, 60_000, failure_mode=mode, retry_interval=2.5, socket_timeout=0.5
    )
    try:
        assert (await limiter.check_limit("k")).allowed
        assert not (await limiter.check_limit("k")).allowed
        server.kill()
        down = await limiter.check_limit("k")
        assert down.allowed is (mode == "open")
        if mode == "closed":
            assert down.retry_after == 2.5
        server.start()  # empty again: the window starts afresh
        assert (await limiter.check_limit("k")).allowed
        assert not (await limiter.check_limit("k")).allowed
    finally:
        await limiter.aclose()


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_breaker_fails_in_its_configured_direction(server: RedisServer, mode: str) -> None:
    breaker = RedisCircuitBreaker(
        server.url, 1, 60_000, name="svc", failure_mode=mode, socket_timeout=0.5
    )
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        return "done"

    try:
        assert await breaker.call(work) == "done"
        server.kill()
        if mode == "open":
            assert await breaker.call(work) == "done"
            assert calls == 2
        else:
            with pytest.raises(CircuitOpenError, match="fails closed"):
                await breaker.call(work)
            assert calls == 1
        server.start()
        assert await breaker.call(work) == "done"
    finally:
        await breaker.aclose()


async def test_slow_redis_makes_the_limiter_fail_in_its_direction(server: RedisServer) -> None:
    limiter = RedisRateLimiter(server.url, 5, 60_000, failure_mode="closed", socket_timeout=0.2)
    try:
        assert (await limiter.check_limit("k")).allowed
        await _slow_down(server.url, 1.0)
        assert not (await limiter.check_limit("k")).allowed
    finally:
        await limiter.aclose()
