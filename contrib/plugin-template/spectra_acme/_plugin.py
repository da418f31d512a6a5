"""Hook implementations: what spectra finds through the entry point."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._store import AcmeSessionStore, AcmeStoreOptions


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "acme",
        lambda options: AcmeSessionStore(options.namespace),
        AcmeStoreOptions,
        description="Template store: sessions in a dict.",
    )
