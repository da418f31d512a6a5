"""Smoke test of bench/server.py: it runs end to end and prints its tables (never times)."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_plugins

ROOT = Path(__file__).resolve().parents[1]


def test_server_bench_runs_and_prints_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("spectra_server", reason="bench.server needs spectra-server")
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.server", None)
    bench = importlib.import_module("bench.server")
    out = io.StringIO()
    assert bench.main(["--quick"], out=out) == 0
    text = out.getvalue()
    assert "| overhead per run |" in text
    assert "| clients | in-process runs/s | HTTP runs/s | HTTP / in-process |" in text
    assert "| 10 |" in text
    assert "| 50 | 5 | 0 |" in text  # 50 SSE streams on 5 runs, no error
