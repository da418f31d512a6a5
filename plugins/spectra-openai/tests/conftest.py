"""One fake OpenAI-compatible server for the whole run; each test gets it reset."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from spectra_openai import OpenAIProvider
from spectra_openai.testing import FakeOpenAIServer


@pytest.fixture(scope="session")
def _running_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def server(_running_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    _running_server.reset()
    yield _running_server
    _running_server.reset()


@pytest.fixture
async def provider(server: FakeOpenAIServer) -> AsyncIterator[OpenAIProvider]:
    p = server.provider()
    yield p
    await p.aclose()
