"""The store conformance suite, each reload through a new store on the same file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spectra_core.store import SessionStore
from spectra_core.testing import SessionStoreConformance
from spectra_sqlite import SQLiteSessionStore


class TestSQLiteSessionStore(SessionStoreConformance):
    @pytest.fixture
    async def store(self, db_path: Path) -> AsyncIterator[SQLiteSessionStore]:
        self.reopened: list[SQLiteSessionStore] = []
        async with SQLiteSessionStore(db_path) as store:
            yield store
        for other in self.reopened:
            await other.aclose()

    async def reopen(self, store: SessionStore) -> SessionStore:
        assert isinstance(store, SQLiteSessionStore)
        fresh = SQLiteSessionStore(store.path)
        self.reopened.append(fresh)
        return fresh
