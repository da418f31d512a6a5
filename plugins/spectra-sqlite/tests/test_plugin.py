"""The plugin: entry point, registered backend and its options."""

from __future__ import annotations

from pathlib import Path

import pytest

import spectra_sqlite
from spectra_core import BackendKind, InvalidArgumentError, load_plugins
from spectra_core.store import BranchLoadingStore, SessionStore
from spectra_sqlite import SQLiteSessionStore, SQLiteStoreOptions, SqliteStoreOptions


def test_public_api() -> None:
    assert sorted(spectra_sqlite.__all__) == [
        "SCHEMA_VERSION",
        "SQLiteSessionStore",
        "SQLiteStoreOptions",
        "SYNCHRONOUS_LEVELS",
    ]
    assert SqliteStoreOptions is spectra_sqlite.SQLiteStoreOptions  # the old name is kept


async def test_entry_point_registers_sqlite_store(tmp_path: Path) -> None:
    registry = load_plugins()
    backend = registry.get(BackendKind.SESSION_STORE, "sqlite")
    assert backend.distribution == "spectra-sqlite"
    assert backend.options is SQLiteStoreOptions
    store = backend.create(SQLiteStoreOptions(path=str(tmp_path / "x.db"), synchronous="NORMAL"))
    assert isinstance(store, SQLiteSessionStore)
    assert isinstance(store, SessionStore) and isinstance(store, BranchLoadingStore)
    assert store.synchronous == "normal" and store.busy_timeout == 5.0
    async with store:
        await store.ping()
    assert (tmp_path / "x.db").exists()


def test_options_defaults_and_conversions() -> None:
    opts = SQLiteStoreOptions(path="s.db")
    assert (opts.synchronous, opts.busy_timeout) == ("full", 5.0)
    opts = SQLiteStoreOptions(path="s.db", synchronous="Extra", busy_timeout="250ms")
    assert (opts.synchronous, opts.busy_timeout) == ("extra", 0.25)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": ""},
        {"path": "s.db", "synchronous": "fast"},
        {"path": "s.db", "busy_timeout": "soon"},
    ],
)
def test_options_reject_bad_values(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"path|synchronous|duration") as info:
        SQLiteStoreOptions(**kwargs)
    if "synchronous" in kwargs:
        assert isinstance(info.value, InvalidArgumentError)
        assert "off, normal, full, extra" in str(info.value)


async def test_synchronous_level_is_applied(db_path: Path) -> None:
    for level, number in (("off", 0), ("normal", 1), ("full", 2), ("extra", 3)):
        store = SQLiteSessionStore(db_path, synchronous=level)
        async with store:
            await store.ping()
            assert store._db is not None
            rows = list(await store._db.execute_fetchall("PRAGMA synchronous"))
            assert rows == [(number,)]
            (mode,) = next(iter(await store._db.execute_fetchall("PRAGMA journal_mode")))
            assert mode == "wal"
