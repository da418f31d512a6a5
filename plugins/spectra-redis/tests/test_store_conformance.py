"""The store conformance suite against real Redis, without and with a cold store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spectra_core.store import SessionStore
from spectra_core.testing import SessionStoreConformance
from spectra_redis import RedisSessionStore
from spectra_sqlite import SQLiteSessionStore


class TestRedisSessionStore(SessionStoreConformance):
    @pytest.fixture
    async def store(self, redis_url: str, prefix: str) -> AsyncIterator[RedisSessionStore]:
        self.reopened: list[RedisSessionStore] = []
        async with RedisSessionStore(redis_url, key_prefix=prefix) as store:
            yield store
        for other in self.reopened:
            await other.aclose()

    async def reopen(self, store: SessionStore) -> SessionStore:
        assert isinstance(store, RedisSessionStore)
        fresh = RedisSessionStore(store._url or "", key_prefix=store.key_prefix)
        self.reopened.append(fresh)
        return fresh


class TestRedisWithColdStore(SessionStoreConformance):
    """Write-through to SQLite; reloads go through a fresh store whose Redis was flushed
    of this test's keys half the time, so both the hot and the cold path are checked."""

    @pytest.fixture
    async def store(
        self, redis_url: str, prefix: str, tmp_path: Path
    ) -> AsyncIterator[RedisSessionStore]:
        self.reopened: list[RedisSessionStore] = []
        self.db = tmp_path / "cold.db"
        cold = SQLiteSessionStore(self.db)
        async with RedisSessionStore(redis_url, key_prefix=prefix, cold_store=cold) as store:
            yield store
        for other in self.reopened:
            await other.aclose()

    async def reopen(self, store: SessionStore) -> SessionStore:
        assert isinstance(store, RedisSessionStore)
        client = store.client()
        if len(self.reopened) % 2:
            keys = [k async for k in client.scan_iter(match=f"{store.key_prefix}*")]
            if keys:
                await client.delete(*keys)
        fresh = RedisSessionStore(
            store._url or "", key_prefix=store.key_prefix, cold_store=SQLiteSessionStore(self.db)
        )
        self.reopened.append(fresh)
        return fresh
