from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spectra_core import SessionStore
from spectra_core.testing import SessionStoreConformance
from spectra_fs import FileSystemSessionStore


class TestFileSystemSessionStore(SessionStoreConformance):
    """The conformance suite; ``reopen`` reads through a new store on the same directory."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[FileSystemSessionStore]:
        self.reopened: list[FileSystemSessionStore] = []
        async with FileSystemSessionStore(tmp_path / "sessions") as store:
            yield store
        for other in self.reopened:
            await other.aclose()

    async def reopen(self, store: SessionStore) -> SessionStore:
        assert isinstance(store, FileSystemSessionStore)
        other = FileSystemSessionStore(store.directory, durability=store.durability)
        self.reopened.append(other)
        return other
