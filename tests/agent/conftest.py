"""Fixtures of the agent loop tests: a store that really encodes what it saves (files),
and a real OpenAI-compatible server on 127.0.0.1. Plugins are imported inside the
fixtures, so the core-alone session can still collect these modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import stamina

from spectra_core import SessionManager
from spectra_core.testing import FakeClock


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


@pytest.fixture
async def disk_manager(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SessionManager]:
    """A manager over the fs store: unlike the memory store it encodes every entry, so
    text that cannot be stored fails there as it would in production."""
    from spectra_fs import FileSystemSessionStore

    store = FileSystemSessionStore(tmp_path / "sessions")
    yield SessionManager(store, clock=clock)
    await store.aclose()


@pytest.fixture(scope="module")
def _openai_server() -> Iterator[Any]:
    from spectra_openai.testing import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(_openai_server: Any) -> Iterator[Any]:
    _openai_server.reset()
    yield _openai_server
    _openai_server.reset()
