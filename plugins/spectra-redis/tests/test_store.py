"""The Redis store beyond the conformance suite: sliding TTL, evictions, key layout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from spectra_core import SessionManager, SessionNotFoundError
from spectra_core.store import SessionFilter
from spectra_redis import RedisSessionStore


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[RedisSessionStore]:
    async with RedisSessionStore(redis_url, key_prefix=prefix, ttl_seconds=100) as s:
        yield s


async def test_every_load_and_save_refreshes_the_ttl(store: RedisSessionStore) -> None:
    manager = SessionManager(store)
    s = await manager.create()
    manager.append_message(s, "hi")
    await manager.save(s)
    client = store.client()
    keys = store._hot().keys(s.id)
    for key in keys:
        assert 90_000 < await client.pttl(key) <= 100_000
        await client.pexpire(key, 5_000)
    await manager.load(s.id)
    for key in keys:
        assert await client.pttl(key) > 90_000
    for key in keys:
        await client.pexpire(key, 5_000)
    await manager.load(s.id, tail=1)
    assert all([await client.pttl(k) > 90_000 for k in keys])


async def test_keys_of_a_session_share_one_hash_tag(store: RedisSessionStore) -> None:
    keys = store._hot().keys("abc")
    assert {k[k.index("{") : k.index("}") + 1] for k in keys} == {"{abc}"}


async def test_an_evicted_session_leaves_the_listing(store: RedisSessionStore) -> None:
    manager = SessionManager(store)
    kept = await manager.create(user_id="u")
    gone = await manager.create(user_id="u")
    await store.client().delete(*store._hot().keys(gone.id))  # as an expiry would
    with pytest.raises(SessionNotFoundError):
        await manager.load(gone.id)
    for flt in (SessionFilter(), SessionFilter(user_id="u")):
        assert [i.id for i in await manager.list(flt)] == [kept.id]
    index = store._hot().index_key("user", "u")
    assert await store.client().zrange(index, 0, -1) == [kept.id.encode()]


async def test_listing_pages_past_many_evicted_sessions(store: RedisSessionStore) -> None:
    manager = SessionManager(store)
    made = [await manager.create(tenant_id="t") for _ in range(5)]
    for s in made[1:4]:
        await store.client().delete(*store._hot().keys(s.id))
    page = await manager.list(SessionFilter(tenant_id="t", limit=1))
    assert len(page) == 1 and page.next_cursor is not None
    rest = await manager.list(SessionFilter(tenant_id="t", limit=5, cursor=page.next_cursor))
    assert {i.id for i in [*page, *rest]} == {made[0].id, made[4].id}
