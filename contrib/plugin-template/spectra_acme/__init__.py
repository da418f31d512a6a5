"""A template spectra plugin: session store backend ``acme``."""

from ._store import AcmeSessionStore, AcmeStoreOptions

__all__ = ["AcmeSessionStore", "AcmeStoreOptions"]
