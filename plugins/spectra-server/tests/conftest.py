"""A real uvicorn server on 127.0.0.1 serving create_app over an in-memory engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from server_helpers import KEYS, make_engine, make_settings

from spectra_core import SessionEngine
from spectra_core.testing.asgi_server import serve_asgi
from spectra_server import create_app


@pytest.fixture
async def engine() -> AsyncIterator[SessionEngine]:
    engine = make_engine()
    engine.start()
    yield engine
    await engine.stop(drain=False)


@pytest.fixture
async def base_url(engine: SessionEngine) -> AsyncIterator[str]:
    async with serve_asgi(create_app(engine, make_settings())) as url:
        yield url


@pytest.fixture
async def clients(base_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per principal (alice, bob: tenant acme; mallory: user 'alice' of
    tenant evil), each sending its key, and ``anon`` sending none."""
    out = {
        name: httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"})
        for name, key in KEYS.items()
    }
    out["anon"] = httpx.AsyncClient(base_url=base_url)
    yield out
    for client in out.values():
        await client.aclose()
