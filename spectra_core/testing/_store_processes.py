"""The part of the store conformance suite that needs other processes: a forked child
using the store it inherited, two processes saving one session, a store never closed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from ..manager import SessionManager
from ..models import MessageEntry, Session
from ..store import SessionStore
from ._store_base import StoreConformanceBase
from .fork import run_in_forked_child
from .recipe import StoreRecipe

__all__ = ["ProcessConformance"]

#: Seconds a child process may take before the test fails.
CHILD_TIMEOUT = 120


def _texts(session: Session) -> list[str]:
    return [e.message.text for e in session.entries if isinstance(e, MessageEntry)]


class ProcessConformance(StoreConformanceBase):
    """A forked child, two processes on one session, a store never closed (the last two
    need :meth:`store_recipe`)."""

    def _recipe_or_skip(self, store: SessionStore) -> StoreRecipe:
        recipe = self.store_recipe(store)
        if recipe is None:
            pytest.skip("store_recipe() gives no recipe: the store's data lives in-process")
        return recipe

    def _child(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "spectra_core.testing._store_child", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def test_a_forked_child_saves_with_the_store_of_its_parent(
        self, manager: SessionManager
    ) -> None:
        if not self.supports_fork:
            pytest.skip("supports_fork is False: the store is not to be used across fork()")
        session = await manager.create()
        manager.append_message(session, "from the parent")
        await manager.save(session)

        async def in_child() -> None:
            copy = await manager.load(session.id)
            manager.append_message(copy, "from the child")
            await manager.save(copy)
            assert _texts(await manager.load(session.id)) == ["from the parent", "from the child"]

        # Forked from a worker thread: the child has no running event loop, only the
        # threads and connections the parent's store left behind.
        await asyncio.to_thread(run_in_forked_child, in_child)
        if self.store_recipe(manager.store) is not None:  # the data is shared: we see it
            loaded = await manager.load(session.id)
            assert _texts(loaded) == ["from the parent", "from the child"]

    async def test_two_processes_saving_one_session_lose_nothing(
        self, store: SessionStore, manager: SessionManager
    ) -> None:
        recipe = self._recipe_or_skip(store)
        n = self.process_saves
        await manager.create(session_id="shared")
        procs = [
            self._child("contend", recipe.to_json(), "shared", str(n), tag) for tag in ("p", "q")
        ]
        for proc in procs:
            out, err = await asyncio.to_thread(proc.communicate, timeout=CHILD_TIMEOUT)
            assert proc.returncode == 0, err
            assert int(out.strip()) >= 0
        loaded = await manager.load("shared")
        texts = _texts(loaded)
        assert sorted(texts) == sorted([f"p-{i}" for i in range(n)] + [f"q-{i}" for i in range(n)])
        assert loaded.version == 2 * n + 1
        for tag in ("p", "q"):  # each writer's entries are in its own order
            assert [t for t in texts if t.startswith(tag)] == [f"{tag}-{i}" for i in range(n)]
        # every entry hangs off the previous one: no save was based on a stale copy
        assert [e.parent_id for e in loaded.entries[1:]] == [e.id for e in loaded.entries[:-1]]
        (info,) = (await manager.list()).sessions
        assert info.version == 2 * n + 1
        await self.check_integrity(store)

    async def test_a_store_never_closed_does_not_hang_exit(
        self, store: SessionStore, manager: SessionManager
    ) -> None:
        recipe = self._recipe_or_skip(store)
        proc = self._child("unclosed", recipe.to_json(), "left-open")
        out, err = await asyncio.to_thread(proc.communicate, timeout=CHILD_TIMEOUT)
        assert proc.returncode == 0, err
        assert out.strip() == "2"
        loaded = await manager.load("left-open")
        assert loaded.version == 2 and _texts(loaded) == ["saved before exit"]
