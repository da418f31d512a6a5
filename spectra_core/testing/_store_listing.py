"""The listing and bounded-loading part of the session store conformance suite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ..errors import InvalidArgumentError
from ..manager import SessionManager
from ..models import AssistantMessage, Session
from ..store import SessionFilter
from ..tree import trim_to_active_branch
from ._store_base import StoreConformanceBase
from .clock import FakeClock

__all__ = ["ListingConformance"]


class ListingConformance(StoreConformanceBase):
    """``list`` (filters, order, pages) and ``load_branch`` / ``tail=`` windows."""

    async def _populate(self, manager: SessionManager, clock: FakeClock, n: int) -> list[Session]:
        out = []
        for i in range(n):
            clock.advance(60)
            out.append(
                await manager.create(user_id=f"u{i % 2}", tenant_id="t-a" if i < 3 else "t-b")
            )
        return out

    async def test_list_filters(self, manager: SessionManager, clock: FakeClock) -> None:
        made = await self._populate(manager, clock, 5)
        everything = await manager.list()
        assert [i.id for i in everything] == [s.id for s in reversed(made)]
        assert everything.next_cursor is None
        by_user = await manager.list(SessionFilter(user_id="u0"))
        assert {i.id for i in by_user} == {made[0].id, made[2].id, made[4].id}
        by_tenant = await manager.list(SessionFilter(tenant_id="t-b"))
        assert {i.id for i in by_tenant} == {made[3].id, made[4].id}
        both = await manager.list(SessionFilter(user_id="u1", tenant_id="t-a"))
        assert [i.id for i in both] == [made[1].id]
        window = await manager.list(
            SessionFilter(updated_after=made[1].updated_at, updated_before=made[3].updated_at)
        )
        assert [i.id for i in window] == [made[2].id, made[1].id]

    async def test_list_treats_naive_datetimes_as_utc(
        self, manager: SessionManager, clock: FakeClock
    ) -> None:
        made = await self._populate(manager, clock, 4)

        def naive(moment: datetime) -> datetime:
            return moment.astimezone(UTC).replace(tzinfo=None)

        window = await manager.list(
            SessionFilter(
                updated_after=naive(made[1].updated_at),
                updated_before=naive(made[3].updated_at),
            )
        )
        assert [i.id for i in window] == [made[2].id, made[1].id]

    async def test_list_reflects_updates(self, manager: SessionManager, clock: FakeClock) -> None:
        made = await self._populate(manager, clock, 3)
        clock.advance(60)
        oldest = await manager.load(made[0].id)
        manager.append_message(oldest, "bump")
        await manager.save(oldest)
        page = await manager.list()
        assert page.sessions[0].id == made[0].id
        assert page.sessions[0].updated_at == oldest.updated_at
        assert page.sessions[0].version == 2
        later = await manager.list(
            SessionFilter(updated_after=made[2].updated_at + timedelta(seconds=1))
        )
        assert [i.id for i in later] == [made[0].id]

    async def test_list_paginates_without_gaps_or_duplicates(
        self, manager: SessionManager, clock: FakeClock
    ) -> None:
        made = await self._populate(manager, clock, 7)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await manager.list(SessionFilter(limit=3, cursor=cursor))
            pages += 1
            seen.extend(i.id for i in page)
            assert len(page) <= 3
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3
        assert seen == [s.id for s in reversed(made)]

    async def test_list_with_same_timestamps_paginates(self, manager: SessionManager) -> None:
        made = {(await manager.create()).id for _ in range(5)}
        seen: list[str] = []
        cursor = None
        while True:
            page = await manager.list(SessionFilter(limit=2, cursor=cursor))
            seen.extend(i.id for i in page)
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(seen) == sorted(made)

    async def test_list_rejects_bad_cursor(self, manager: SessionManager) -> None:
        await manager.create()
        with pytest.raises(InvalidArgumentError):
            await manager.list(SessionFilter(cursor="not a cursor!"))

    # --- bounded loading --------------------------------------------------------------

    async def _long_session(self, manager: SessionManager) -> Session:
        s = await manager.create({"model": {"id": "configured"}})
        manager.append_message(s, "q0")
        side = manager.append_message(s, AssistantMessage("a0"))
        manager.append_model_change(s, "switched")
        for i in range(1, 6):
            manager.append_message(s, f"q{i}")
            manager.append_message(s, AssistantMessage(f"a{i}"))
        manager.branch(s, side.id)
        manager.append_message(s, "side branch")
        manager.branch(s, s.entries[-2].id)
        await manager.save(s)
        return s

    async def test_load_active_branch_matches_trimmed_full_load(
        self, manager: SessionManager
    ) -> None:
        s = await self._long_session(manager)
        for tail in (None, 1, 3, 100):
            part = await manager.load(s.id, active_branch=True, tail=tail)
            expected = trim_to_active_branch(await manager.load(s.id), tail)
            assert part.entries == expected.entries, tail
            assert part.partial == expected.partial, tail
            assert manager.build_context(part).model == manager.build_context(s).model
        part = await manager.load(s.id, tail=3)
        assert len(part.entries) == 3
        assert part.partial is not None and part.partial.model is not None
        assert part.partial.model.id == "switched"

    async def test_load_active_branch_starts_at_last_compaction(
        self, manager: SessionManager
    ) -> None:
        s = await self._long_session(manager)
        branch = manager.get_branch(s)
        kept = branch[-4]
        comp = manager.append_compaction(s, "earlier stuff", kept.id, tokens_before=99)
        manager.append_message(s, "after compaction")
        await manager.save(s)
        part = await manager.load(s.id, active_branch=True)
        assert part.entries[0] == kept
        assert comp in part.entries
        assert manager.build_context(part) == manager.build_context(s)

    async def test_partial_session_appends_and_saves(self, manager: SessionManager) -> None:
        s = await self._long_session(manager)
        part = await manager.load(s.id, tail=2)
        new = manager.append_message(part, "appended to partial")
        await manager.save(part)
        full = await self._reloaded(manager.store, s.id)
        assert full.entries[:-1] == s.entries
        assert full.entries[-1] == new
        assert full.leaf_id == new.id
