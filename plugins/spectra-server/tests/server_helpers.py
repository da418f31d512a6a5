"""Principals, keys and the engine the server tests use."""

from __future__ import annotations

from typing import Any

from spectra_core import EchoProvider, SessionEngine, SessionManager
from spectra_memory import InMemorySessionStore, MemoryEventLog
from spectra_server import ApiKey, ServerSettings

#: name -> key; see PRINCIPALS for whom each acts as.
KEYS = {
    "alice": "alice-key-0123456789",
    "bob": "bob-key-01234567890",
    "mallory": "mallory-key-0123456789",
}
PRINCIPALS = {"alice": ("acme", "alice"), "bob": ("acme", "bob"), "mallory": ("evil", "alice")}


def make_settings(**overrides: Any) -> ServerSettings:
    keys = [
        ApiKey(tenant=PRINCIPALS[name][0], user=PRINCIPALS[name][1], key=key, name=name)
        for name, key in KEYS.items()
    ]
    return ServerSettings(api_keys=keys, **overrides)


def make_engine(**kwargs: Any) -> SessionEngine:
    kwargs.setdefault("provider", EchoProvider())
    kwargs.setdefault("event_log", MemoryEventLog())
    return SessionEngine(SessionManager(InMemorySessionStore()), **kwargs)
