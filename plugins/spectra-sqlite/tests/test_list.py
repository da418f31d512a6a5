"""Listing: filters and keyset pagination run in SQL, on the sessions indexes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from spectra_core import SessionManager, StoreError
from spectra_core.clock import utc_from_timestamp
from spectra_core.store import SessionFilter, SessionInfo, encode_cursor, page_of
from spectra_core.testing import FakeClock
from spectra_sqlite import SQLiteSessionStore

OpenStore = Callable[..., SQLiteSessionStore]
MOMENT = utc_from_timestamp(1_700_000_000)


async def _all_pages(store: SQLiteSessionStore, flt: SessionFilter) -> list[list[str]]:
    pages = []
    cursor = None
    while True:
        page = await store.list(attrs.evolve(flt, cursor=cursor))
        pages.append([i.id for i in page])
        if (cursor := page.next_cursor) is None:
            return pages


def _reference(infos: list[SessionInfo], flt: SessionFilter) -> list[list[str]]:
    pages = []
    cursor = None
    while True:
        page = page_of(infos, attrs.evolve(flt, cursor=cursor))
        pages.append([i.id for i in page])
        if (cursor := page.next_cursor) is None:
            return pages


async def test_filters_and_pages_match_the_reference(open_store: OpenStore) -> None:
    clock = FakeClock()
    store = open_store(synchronous="off")
    manager = SessionManager(store, clock=clock)
    made = []
    for i in range(120):
        clock.advance(7 if i % 3 else 0)  # some sessions share a timestamp
        made.append(
            await manager.create(user_id=f"u{i % 4}", tenant_id=f"t{i % 3}" if i % 5 else None)
        )
    infos = [SessionInfo.of(s) for s in made]
    start = made[0].updated_at
    filters = [
        SessionFilter(limit=9),
        SessionFilter(user_id="u1", limit=4),
        SessionFilter(tenant_id="t2", limit=5),
        SessionFilter(user_id="u3", tenant_id="t0", limit=2),
        SessionFilter(updated_after=start + timedelta(seconds=100), limit=11),
        SessionFilter(
            user_id="u2",
            updated_after=start + timedelta(seconds=70),
            updated_before=start + timedelta(seconds=500),
            limit=3,
        ),
        SessionFilter(user_id="nobody"),
    ]
    for flt in filters:
        assert await _all_pages(store, flt) == _reference(infos, flt), flt


async def test_list_reads_through_indexes(open_store: OpenStore, db_path: Path) -> None:
    await open_store().ping()
    cursor = encode_cursor(
        SessionInfo(id="x", user_id=None, tenant_id=None, created_at=MOMENT, updated_at=MOMENT)
    )
    conn = sqlite3.connect(db_path)
    try:
        for flt in (
            SessionFilter(),
            SessionFilter(cursor=cursor),
            SessionFilter(user_id="u", cursor=cursor),
            SessionFilter(tenant_id="t", updated_after=MOMENT, updated_before=MOMENT),
            SessionFilter(user_id="u", tenant_id="t"),
        ):
            sql, params = SQLiteSessionStore.list_query(flt)
            plan = " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "USING INDEX sessions_by_" in plan, (flt, plan)
            assert "TEMP B-TREE" not in plan, (flt, plan)
    finally:
        conn.close()


async def test_busy_database_gives_a_clear_error(open_store: OpenStore, db_path: Path) -> None:
    store = open_store(busy_timeout="50ms")
    manager = SessionManager(store, clock=FakeClock())
    s = await manager.create()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        manager.append_message(s, "waits")
        with pytest.raises(StoreError, match="busy_timeout") as info:
            await manager.save(s)
        assert str(db_path) in str(info.value)
        assert s.version == 1 and len(s.unsaved_entries) == 1
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    await manager.save(s)
    assert (await store.load(s.id)).version == 2
