from pathlib import Path

from spectra_core.store import SessionStore
from spectra_core.testing import SessionStoreConformance, StoreRecipe
from spectra_fs import FileSystemSessionStore


class TestFileSystemSessionStore(SessionStoreConformance):
    """The conformance suite; reloads and other processes open the same directory."""

    async def make_store(self, workdir: Path, namespace: str) -> SessionStore:
        return FileSystemSessionStore(workdir / "sessions")

    def store_recipe(self, store: SessionStore) -> StoreRecipe:
        assert isinstance(store, FileSystemSessionStore)
        return StoreRecipe(
            "spectra_fs:FileSystemSessionStore",
            {"directory": str(store.directory), "durability": store.durability},
        )
