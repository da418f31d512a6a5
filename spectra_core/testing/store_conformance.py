"""The session store conformance suite.

Subclass it in a plugin's tests and say how to make a fresh, empty store; a durable store
also says how another process opens a store over the same data (which checks what saves
made durable, and runs the fork, multi-process and exit tests)::

    class TestMyStore(SessionStoreConformance):
        async def make_store(self, workdir, namespace):
            return MyStore(workdir / "data")

        def store_recipe(self, store):
            return StoreRecipe("my_store:MyStore", {"path": str(store.path)})

A store on a shared server puts ``namespace`` (unique per test) in its key prefix or
schema and removes it in :meth:`discard`. The hooks (``make_store``, ``store_recipe``,
``reopen``, ``discard``, ``check_integrity``, ``supports_fork``, ``process_saves``) are
documented in docs/writing-a-plugin.md. Overriding the ``store`` fixture instead of
``make_store`` works too. Requires pytest-asyncio.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..errors import (
    ConflictError,
    EntryNotFoundError,
    InvalidIdError,
    SessionNotFoundError,
)
from ..manager import SessionManager
from ..models import AssistantMessage, AuditEntry, MessageEntry, UserMessage
from ..serde import session_to_dict
from ..store import SessionStore
from ._store_listing import ListingConformance
from ._store_processes import ProcessConformance
from .samples import every_entry_kind

__all__ = ["SessionStoreConformance"]

BAD_IDS = ["", "../x", "/etc/passwd", "a/b", "a\x00b", "x" * 300, "..", ".hidden", "a b"]


class SessionStoreConformance(ListingConformance, ProcessConformance):
    """The behaviour every session store must show. See the module docstring."""

    # --- CRUD -------------------------------------------------------------------------

    async def test_create_then_load_round_trips(self, manager: SessionManager) -> None:
        s = await manager.create(
            {
                "system_prompt": "be brief",
                "model": {"id": "m", "provider": "p"},
                "metadata": {"k": [1, 2]},
            },
            user_id="u1",
            tenant_id="t1",
        )
        assert s.version == 1
        loaded = await self._reloaded(manager.store, s.id)
        assert loaded == s
        assert loaded.config.system_prompt == "be brief"
        assert loaded.user_id == "u1" and loaded.tenant_id == "t1"

    async def test_load_missing_raises_session_not_found(self, store: SessionStore) -> None:
        with pytest.raises(SessionNotFoundError):
            await store.load("does-not-exist")

    async def test_delete(self, manager: SessionManager) -> None:
        s = await manager.create()
        manager.append_message(s, "hi")
        await manager.save(s)
        await manager.delete(s.id)
        with pytest.raises(SessionNotFoundError):
            await manager.load(s.id)
        with pytest.raises(SessionNotFoundError):
            await manager.delete(s.id)

    async def test_save_after_delete_conflicts(self, manager: SessionManager) -> None:
        s = await manager.create()
        await manager.delete(s.id)
        manager.append_message(s, "late")
        with pytest.raises(ConflictError):
            await manager.save(s)
        with pytest.raises(SessionNotFoundError):
            await manager.load(s.id)

    async def test_stale_copy_of_a_deleted_session_never_saves_over_a_new_one(
        self, manager: SessionManager
    ) -> None:
        old = await manager.create(session_id="reused-id", user_id="old")
        stale = await manager.load(old.id)
        await manager.delete(old.id)
        new = await manager.create(session_id="reused-id", user_id="new")
        assert new.version == stale.version  # only the incarnation tells them apart
        manager.append_message(stale, "from the deleted session")
        with pytest.raises(ConflictError) as info:
            await manager.save(stale)
        assert info.value.recreated
        stored = await self._reloaded(manager.store, new.id)
        assert stored.user_id == "new" and stored.entries == []
        assert stored.incarnation is not None and stored.incarnation == new.incarnation
        assert old.incarnation is not None and old.incarnation != new.incarnation

    async def test_create_with_existing_id_conflicts(self, manager: SessionManager) -> None:
        s = await manager.create(session_id="fixed-id", user_id="first")
        with pytest.raises(ConflictError):
            await manager.create(session_id="fixed-id", user_id="second")
        assert (await manager.load(s.id)).user_id == "first"

    @pytest.mark.parametrize("bad", BAD_IDS)
    async def test_bad_ids_are_rejected(self, store: SessionStore, bad: str) -> None:
        with pytest.raises(InvalidIdError):
            await store.load(bad)
        with pytest.raises(InvalidIdError):
            await store.delete(bad)

    # --- append, version, conflict ----------------------------------------------------

    async def test_save_persists_only_new_entries_and_bumps_version(
        self, manager: SessionManager
    ) -> None:
        s = await manager.create()
        for i in range(3):
            manager.append_message(s, f"m{i}")
            assert len(s.unsaved_entries) == 1
            await manager.save(s)
            assert s.unsaved_entries == []
            assert s.version == i + 2
        loaded = await self._reloaded(manager.store, s.id)
        assert [e.message.text for e in loaded.entries if isinstance(e, MessageEntry)] == [
            "m0",
            "m1",
            "m2",
        ]
        assert loaded.version == 4 and loaded == s

    async def test_save_without_new_entries_still_updates_header(
        self, manager: SessionManager
    ) -> None:
        s = await manager.create()
        a = manager.append_message(s, "a")
        manager.append_message(s, "b")
        await manager.save(s)
        manager.branch(s, a.id)
        await manager.save(s)
        loaded = await self._reloaded(manager.store, s.id)
        assert loaded.leaf_id == a.id and loaded.version == s.version == 3

    async def test_stale_copy_gets_conflict_and_writes_nothing(
        self, manager: SessionManager
    ) -> None:
        s = await manager.create()
        first = await manager.load(s.id)
        second = await manager.load(s.id)
        manager.append_message(first, "from first")
        await manager.save(first)
        manager.append_message(second, "from second")
        with pytest.raises(ConflictError) as info:
            await manager.save(second)
        assert info.value.session_id == s.id
        assert second.version == 1 and len(second.unsaved_entries) == 1
        stored = await self._reloaded(manager.store, s.id)
        assert stored == first
        assert [e.message.text for e in stored.entries if isinstance(e, MessageEntry)] == [
            "from first"
        ]

    async def test_conflict_then_reload_and_retry_keeps_both(self, manager: SessionManager) -> None:
        s = await manager.create()
        a, b = await manager.load(s.id), await manager.load(s.id)
        manager.append_message(a, "a")
        await manager.save(a)
        manager.append_message(b, "b")
        with pytest.raises(ConflictError):
            await manager.save(b)
        b = await manager.load(s.id)
        manager.append_message(b, "b")
        await manager.save(b)
        texts = [
            e.message.text
            for e in (await manager.load(s.id)).entries
            if isinstance(e, MessageEntry)
        ]
        assert texts == ["a", "b"]

    async def test_concurrent_writers_never_lose_an_entry(self, manager: SessionManager) -> None:
        s = await manager.create()
        writers = 25

        async def writer(i: int) -> int:
            conflicts = 0
            while True:
                copy = await manager.load(s.id)
                manager.append_message(copy, f"w{i}")
                await asyncio.sleep(0)
                try:
                    await manager.save(copy)
                    return conflicts
                except ConflictError:
                    conflicts += 1

        await asyncio.gather(*(writer(i) for i in range(writers)))
        loaded = await self._reloaded(manager.store, s.id)
        texts = sorted(e.message.text for e in loaded.entries if isinstance(e, MessageEntry))
        assert texts == sorted(f"w{i}" for i in range(writers))
        assert loaded.version == writers + 1
        ids = [e.id for e in loaded.entries]
        assert len(ids) == len(set(ids))

    async def test_many_stale_saves_at_once_exactly_one_wins(self, manager: SessionManager) -> None:
        s = await manager.create()
        copies = [await manager.load(s.id) for _ in range(20)]
        for i, c in enumerate(copies):
            manager.append_message(c, f"c{i}")
        results = await asyncio.gather(*(manager.save(c) for c in copies), return_exceptions=True)
        wins = [r for r in results if not isinstance(r, BaseException)]
        assert len(wins) == 1
        assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))
        assert len((await manager.load(s.id)).entries) == 1

    # --- tree -------------------------------------------------------------------------

    async def test_every_entry_kind_round_trips(self, manager: SessionManager) -> None:
        s = await manager.create()
        appended = every_entry_kind(manager, s)
        await manager.save(s)
        loaded = await self._reloaded(manager.store, s.id)
        assert loaded.entries == appended
        assert session_to_dict(loaded) == session_to_dict(s)

    async def test_unicode_and_one_megabyte_payloads(self, manager: SessionManager) -> None:
        s = await manager.create(user_id="ユーザー", tenant_id="テナント")
        big = "ü€𝄞" * (1024 * 1024 // 9) + "\n\"'\\"
        manager.append_message(s, big)
        manager.append_custom(s, "blob", {"data": big, "emoji": "🦀"})
        await manager.save(s)
        loaded = await self._reloaded(manager.store, s.id)
        assert loaded == s
        first = loaded.entries[0]
        assert isinstance(first, MessageEntry) and first.message.text == big

    async def test_branch_and_tree_survive_reload(self, manager: SessionManager) -> None:
        s = await manager.create()
        u = manager.append_message(s, "question")
        a1 = manager.append_message(s, AssistantMessage("answer one"))
        manager.branch(s, u.id)
        a2 = manager.append_message(s, AssistantMessage("answer two"))
        await manager.save(s)
        loaded = await self._reloaded(manager.store, s.id)
        assert loaded.leaf_id == a2.id
        assert [e.id for e in manager.get_branch(loaded)] == [u.id, a2.id]
        assert [e.id for e in manager.get_branch(loaded, a1.id)] == [u.id, a1.id]
        (root,) = manager.get_tree(loaded)
        assert [c.entry.id for c in root.children] == [a1.id, a2.id]

    async def test_fork_copies_branch_and_leaves_source_unchanged(
        self, manager: SessionManager
    ) -> None:
        s = await manager.create({"system_prompt": "sp"}, user_id="u", tenant_id="t")
        u = manager.append_message(s, "q")
        a = manager.append_message(s, AssistantMessage("a"))
        manager.append_message(s, "q2")
        await manager.save(s)
        before = session_to_dict(await manager.load(s.id))
        fork = await manager.fork(s.id, a.id)
        assert fork.id != s.id
        assert fork.forked_from is not None
        assert (fork.forked_from.session_id, fork.forked_from.entry_id) == (s.id, a.id)
        assert [e.id for e in fork.entries[:2]] == [u.id, a.id]
        audit = fork.entries[-1]
        assert isinstance(audit, AuditEntry) and audit.event_type == "fork"
        assert fork.user_id == "u" and fork.tenant_id == "t"
        assert fork.config.system_prompt == "sp"
        assert session_to_dict(await manager.load(s.id)) == before
        assert await self._reloaded(manager.store, fork.id) == fork
        manager.append_message(fork, "only in fork")
        await manager.save(fork)
        assert session_to_dict(await manager.load(s.id)) == before

    async def test_fork_of_unknown_entry_raises(self, manager: SessionManager) -> None:
        s = await manager.create()
        with pytest.raises(EntryNotFoundError):
            await manager.fork(s.id, "nope")
        with pytest.raises(SessionNotFoundError):
            await manager.fork("missing-session")

    # --- lifecycle --------------------------------------------------------------------

    async def test_ping_and_close(self, store: SessionStore) -> None:
        await store.ping()
        async with store as entered:
            assert entered is store

    async def test_messages_keep_their_types(self, manager: SessionManager) -> None:
        s = await manager.create()
        manager.append_message(s, UserMessage("u"))
        manager.append_message(s, AssistantMessage("a", model="m", stop_reason="stop"))
        await manager.save(s)
        kinds: list[Any] = [
            type(e.message)
            for e in (await self._reloaded(manager.store, s.id)).entries
            if isinstance(e, MessageEntry)
        ]
        assert kinds == [UserMessage, AssistantMessage]
