"""The store conformance suite, each reload through a new store on the same file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spectra_core.store import SessionStore
from spectra_core.testing import SessionStoreConformance, StoreRecipe
from spectra_sqlite import SQLiteSessionStore


class TestSQLiteSessionStore(SessionStoreConformance):
    async def make_store(self, workdir: Path, namespace: str) -> SessionStore:
        return SQLiteSessionStore(workdir / "sessions.db")

    def store_recipe(self, store: SessionStore) -> StoreRecipe:
        assert isinstance(store, SQLiteSessionStore)
        return StoreRecipe(
            "spectra_sqlite:SQLiteSessionStore",
            # writers in several processes wait for each other's write lock
            {"db_path": str(store.path), "synchronous": store.synchronous, "busy_timeout": 30},
        )

    async def check_integrity(self, store: SessionStore) -> None:
        assert isinstance(store, SQLiteSessionStore)
        conn = sqlite3.connect(store.path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
