from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spectra_core import SessionManager
from spectra_core.testing import FakeClock
from spectra_fs import FileSystemSessionStore


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
async def store(directory: Path) -> AsyncIterator[FileSystemSessionStore]:
    async with FileSystemSessionStore(directory) as store:
        yield store


@pytest.fixture
def manager(store: FileSystemSessionStore) -> SessionManager:
    return SessionManager(store, clock=FakeClock())
