from pathlib import Path

from spectra_core.store import SessionStore
from spectra_core.testing import SessionStoreConformance
from spectra_memory import InMemorySessionStore


class TestInMemorySessionStore(SessionStoreConformance):
    async def make_store(self, workdir: Path, namespace: str) -> SessionStore:
        return InMemorySessionStore()
