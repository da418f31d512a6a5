"""The fixtures and hooks of the session store conformance suite (see store_conformance)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from ..manager import SessionManager
from ..models import Session
from ..store import SessionStore
from .clock import FakeClock
from .recipe import StoreRecipe

__all__ = ["StoreConformanceBase"]


class StoreConformanceBase:
    """Fixtures and the hooks a backend overrides; the tests are in the subclasses."""

    pytestmark = pytest.mark.asyncio

    #: ``False`` if a store must never be used in a forked child (say so to your users).
    supports_fork: ClassVar[bool] = True
    #: Saves made by each of the two processes of the contention test.
    process_saves: ClassVar[int] = 200

    # --- hooks ------------------------------------------------------------------------

    async def make_store(self, workdir: Path, namespace: str) -> SessionStore:
        """A fresh, empty store. ``workdir`` is an empty directory of this test's own;
        ``namespace`` a token unique to this test, for stores on a shared server (a key
        prefix, a schema or database name). Override this or the ``store`` fixture."""
        raise NotImplementedError(
            f"{type(self).__name__}: override make_store() or the store fixture"
        )

    async def discard(self, namespace: str) -> None:
        """After the test (its stores closed): remove what it left on a shared server
        under ``namespace``. The default has nothing to remove."""

    def store_recipe(self, store: SessionStore) -> StoreRecipe | None:
        """How another process (and :meth:`reopen`) opens a store over ``store``'s data.
        ``None`` (the default): the data lives in this process only; the tests that need
        a second process are skipped, saying so."""
        return None

    async def reopen(self, store: SessionStore) -> SessionStore:
        """A store over the same data as ``store``, to check what a save made durable:
        by default a new one from :meth:`store_recipe`, else ``store`` itself. The suite
        closes every store this returns, other than ``store``, when the test ends."""
        recipe = self.store_recipe(store)
        return store if recipe is None else recipe.open()

    async def check_integrity(self, store: SessionStore) -> None:
        """Check the stored data after other processes wrote it (default: nothing more)."""

    # --- fixtures ---------------------------------------------------------------------

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store_namespace(self) -> str:
        """A token unique to this test (see :meth:`make_store`)."""
        return f"t{uuid.uuid4().hex[:16]}"

    @pytest.fixture
    async def store(self, tmp_path: Path, store_namespace: str) -> AsyncIterator[SessionStore]:
        made = await self.make_store(tmp_path, store_namespace)
        try:
            async with made:
                yield made
        finally:
            await self.discard(store_namespace)

    @pytest.fixture
    def manager(self, store: SessionStore, clock: FakeClock) -> SessionManager:
        return SessionManager(store, clock=clock)

    @pytest.fixture(autouse=True)
    async def _close_reopened(self) -> AsyncIterator[None]:
        self._reopened: list[SessionStore] = []
        yield
        for other in self._reopened:
            await other.aclose()

    async def _reloaded(self, store: SessionStore, session_id: str) -> Session:
        other = await self.reopen(store)
        if other is not store and other not in self._reopened:
            self._reopened.append(other)
        return await other.load(session_id)
