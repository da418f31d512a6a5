"""Shared fixtures of the core and cross-distribution tests.

Tests that import a workspace plugin are marked ``needs_plugins``; the nox session that
runs core alone deselects them.
"""

from __future__ import annotations

import pytest

from spectra_core import SessionManager
from spectra_core.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> SessionManager:
    memory = pytest.importorskip("spectra_memory", reason="needs the spectra-memory plugin")
    return SessionManager(memory.InMemorySessionStore(), clock=clock)
