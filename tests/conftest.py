"""Shared fixtures of the core and cross-distribution tests.

Tests that import a workspace plugin are marked ``needs_plugins``; the nox session that
runs core alone deselects them.
"""

from __future__ import annotations

import os

import pytest

from spectra_core import SessionManager
from spectra_core.testing import FakeClock

#: Modules that import plugins at the top; the core-alone nox session (which sets
#: SPECTRA_CORE_ONLY) does not collect them. Everywhere else a missing plugin fails them.
PLUGIN_MODULES = [
    "engine/test_crash.py",
    "engine/test_openai.py",
    "engine/test_admission.py",
    "engine/test_run.py",
    "engine/_doubles.py",
    "adversarial/test_engine_fuzz.py",
]
collect_ignore = PLUGIN_MODULES if os.environ.get("SPECTRA_CORE_ONLY") else []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> SessionManager:
    from spectra_memory import InMemorySessionStore  # needs_plugins tests only

    return SessionManager(InMemorySessionStore(), clock=clock)
