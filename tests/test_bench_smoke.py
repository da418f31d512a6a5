"""Smoke test of bench/stores.py: it runs end to end and prints its table.

Never asserts on time. The spectra stores that are installed always run; the peers
(the root ``bench`` dependency group) are skipped with a reason when not installed.
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.needs_plugins

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stores_bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``bench.stores``, imported from the repository root (bench/ is not installed)."""
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.stores", None)
    return importlib.import_module("bench.stores")


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _run(bench: ModuleType, stores: list[str], tmp_path: Path) -> str:
    out = io.StringIO()
    argv = ["--sizes", "3", "--quick", "--stores", ",".join(stores), "--workdir", str(tmp_path)]
    assert bench.main(argv, out=out) == 0
    return out.getvalue()


def test_spectra_stores_run_and_print_the_table(stores_bench: ModuleType, tmp_path: Path) -> None:
    stores = ["memory"] + [
        kind
        for kind, module in (("fs", "spectra_fs"), ("sqlite", "spectra_sqlite"))
        if _installed(module)
    ]
    text = _run(stores_bench, stores, tmp_path)
    assert "| store | messages | append mean |" in text
    for kind in stores:
        assert f"| {stores_bench.LABELS[kind]} | 3 |" in text
    assert "FAILED" not in text
    assert "## Targets" in text
    assert list(tmp_path.iterdir()) == []  # temp directories cleaned up


def test_missing_store_is_reported_not_measured(stores_bench: ModuleType, tmp_path: Path) -> None:
    # A store whose package does not import is named with the reason, not crashed on.
    text = _run(stores_bench, ["memory", "fs", "sqlite"], tmp_path)
    for kind, module in (("fs", "spectra_fs"), ("sqlite", "spectra_sqlite")):
        label = stores_bench.LABELS[kind]
        if _installed(module):
            assert f"| {label} | 3 |" in text
        else:
            assert f"{label}: not measured" in text
            assert f"| {label} |" not in text


def test_peers_run_and_are_compared(stores_bench: ModuleType, tmp_path: Path) -> None:
    for module in ("langgraph.checkpoint.sqlite.aio", "agents"):
        if not _installed(module):
            pytest.skip(
                f"{module} is not installed: the peers are in the root 'bench' dependency "
                "group (uv sync --all-packages --group bench)"
            )
    text = _run(stores_bench, ["memory", "langgraph", "agents"], tmp_path)
    assert "| LangGraph AsyncSqliteSaver | 3 |" in text
    assert "| Agents SDK SQLiteSession | 3 |" in text
    assert "spectra memory vs LangGraph AsyncSqliteSaver: append " in text
    assert "#N / #10 paired" in text
    assert "FAILED" not in text


def test_interleave_runs_the_spectra_stores_in_turns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.interleave", None)
    interleave = importlib.import_module("bench.interleave")
    argv = ["--stores", "memory,fs,sqlite", "--size", "4", "--rounds", "2", "--loads", "2"]
    interleave.main([*argv, "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.count("round ") == 2 and out.count(", load ") == 6
    appends, loads = out.split("load (median")
    for label in ("spectra memory", "spectra fs", "spectra sqlite"):
        assert f"- {label}: " in appends and f"- {label}: " in loads
    assert not list(tmp_path.iterdir())  # its temporary directories are removed


def test_build_instructions_builds_the_entries(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.build_instructions", None)
    script = importlib.import_module("bench.build_instructions")
    script.main(2)
    assert "built 2 x 1000 entries, generated builders" in capsys.readouterr().out


def test_streaming_memory_measures_in_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("bench.streaming_memory", None)
    script = importlib.import_module("bench.streaming_memory")
    out = io.StringIO()
    assert script.main(["--chars", "800,1600"], out=out) == 0
    text = out.getvalue()
    assert "baseline (imports only): peak RSS " in text
    assert "| 800 | 107 |" in text and "| 1,600 | 207 |" in text
