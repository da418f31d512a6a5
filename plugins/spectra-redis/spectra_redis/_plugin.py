"""Registers the ``redis`` backends with spectra."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._factories import store_from_options
from ._options import RedisStoreOptions


@hookimpl
def spectra_register_session_stores(register: Register) -> None:
    register(
        "redis",
        store_from_options,
        RedisStoreOptions,
        description="Sessions in Redis (sliding TTL), optionally written through to a cold store.",
    )
