"""Hook implementations: what spectra finds through the entry point."""

from __future__ import annotations

from spectra_core.backend import Register, hookimpl

from ._store import AcmeSessionStore, AcmeStoreOptions


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "acme",
        AcmeSessionStore.from_options,
        AcmeStoreOptions,
        description="Template store: sessions in a SQLite file (standard library).",
    )
