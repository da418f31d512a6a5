"""Shared fixtures: a database path in a fresh folder, and stores closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spectra_sqlite import SQLiteSessionStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
async def open_store(db_path: Path) -> AsyncIterator[type[SQLiteSessionStore]]:
    """``open_store(path=db_path, **kw)``: a store that is closed when the test ends."""
    opened: list[SQLiteSessionStore] = []

    def make(path: Path | None = None, **kw: object) -> SQLiteSessionStore:
        store = SQLiteSessionStore(path or db_path, **kw)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make  # type: ignore[misc]
    for store in opened:
        await store.aclose()
