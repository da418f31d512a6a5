from collections.abc import AsyncIterator

import pytest

from spectra_core.testing import SessionStoreConformance
from spectra_memory import InMemorySessionStore


class TestInMemorySessionStore(SessionStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[InMemorySessionStore]:
        async with InMemorySessionStore() as store:
            yield store
