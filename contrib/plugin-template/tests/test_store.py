from pathlib import Path

from spectra_acme import AcmeSessionStore

from spectra_core.store import SessionStore
from spectra_core.testing import SessionStoreConformance, StoreRecipe


class TestAcmeSessionStore(SessionStoreConformance):
    async def make_store(self, workdir: Path, namespace: str) -> SessionStore:
        return AcmeSessionStore(workdir / "acme.db")

    def store_recipe(self, store: SessionStore) -> StoreRecipe:
        assert isinstance(store, AcmeSessionStore)
        return StoreRecipe("spectra_acme:AcmeSessionStore", {"path": str(store.path)})
