"""Registers the ``fs`` session store with spectra."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._store import FileSystemSessionStore, FsStoreOptions


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "fs",
        FileSystemSessionStore.from_options,
        FsStoreOptions,
        description="Sessions as append-only JSON Lines files in a directory.",
    )
