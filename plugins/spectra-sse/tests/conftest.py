"""A real uvicorn server on 127.0.0.1 serving an SseBridge over a memory event log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sse_helpers import make_app

from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import MemoryEventLog
from spectra_sse import SseBridge


@pytest.fixture
def log() -> MemoryEventLog:
    return MemoryEventLog(max_events=1000)


@pytest.fixture
def bridge(log: MemoryEventLog) -> SseBridge:
    return SseBridge(heartbeat_interval_ms=60_000, send_timeout_ms=10_000, log=log)


@pytest.fixture
async def base_url(bridge: SseBridge) -> AsyncIterator[str]:
    async with serve_asgi(make_app(bridge)) as url:
        yield url
