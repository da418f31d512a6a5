"""Smoke test of bench/sse.py: it runs end to end and prints its table (never times)."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_plugins

ROOT = Path(__file__).resolve().parents[1]


def test_sse_bench_runs_and_prints_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("spectra_sse", reason="bench.sse needs spectra-sse")
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.sse", None)
    bench = importlib.import_module("bench.sse")
    out = io.StringIO()
    assert bench.main(["--quick"], out=out) == 0
    text = out.getvalue()
    assert "| clients | events | plain events/s | spectra events/s | spectra / plain |" in text
    assert "| 1 | 20 |" in text and "| 10 | 20 |" in text
    assert "memory per idle client" in text
