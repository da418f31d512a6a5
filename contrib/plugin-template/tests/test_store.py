from collections.abc import AsyncIterator

import pytest
from spectra_acme import AcmeSessionStore

from spectra_core.testing import SessionStoreConformance


class TestAcmeSessionStore(SessionStoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[AcmeSessionStore]:
        async with AcmeSessionStore() as store:
            yield store
