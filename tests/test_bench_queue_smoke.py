"""Smoke test of bench/queue.py: it runs end to end on real Redis and prints its table
with the saq comparison."""

from __future__ import annotations

import importlib
import io
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("SPECTRA_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.needs_plugins


def test_queue_bench_runs_and_compares(monkeypatch: pytest.MonkeyPatch) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {URL} is unreachable ({exc})")
    pytest.importorskip("saq", reason="saq is in the root 'bench' dependency group")
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.queue", None)
    bench = importlib.import_module("bench.queue")
    out = io.StringIO()
    assert bench.main(["--quick", "--url", URL, "--concurrency", "4"], out=out) == 0
    text = out.getvalue()
    assert "| spectra redis |" in text and "| saq |" in text
    assert "ratios ours/saq: enqueue" in text
