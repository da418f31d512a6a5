"""Registers the ``sqlite`` session store with spectra."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._options import SQLiteStoreOptions
from ._store import SQLiteSessionStore


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "sqlite",
        SQLiteSessionStore.from_options,
        SQLiteStoreOptions,
        description="Sessions in a SQLite file (WAL, one row per entry, durable saves).",
    )
