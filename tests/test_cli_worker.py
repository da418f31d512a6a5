"""``spectra worker`` as a real subprocess: bad configs and options are one-line errors
with exit status 2 (the run itself, on Redis, is tested in spectra-redis)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def spectra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spectra_core", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SPECTRA_DISABLE_PLUGINS": ""},
        timeout=60,
    )


def test_worker_is_listed_in_help() -> None:
    out = spectra("--help")
    assert out.returncode == 0 and "worker" in out.stdout


def test_a_config_without_a_queue_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text('[model]\nprovider = "echo"\n')
    out = spectra("worker", "--config", str(cfg))
    assert out.returncode == 2
    assert (
        out.stderr.strip() == f'error: {cfg}: no [queue] section: add one, e.g. backend = "memory"'
    )


def test_an_unknown_queue_backend_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text('[queue]\nbackend = "nope"\n')
    out = spectra("worker", "-c", str(cfg))
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {cfg}: $.queue.backend: unknown job queue backend 'nope'")


def test_a_missing_config_exits_2(tmp_path: Path) -> None:
    out = spectra("worker", "-c", str(tmp_path / "none.toml"))
    assert out.returncode == 2 and "config file not found" in out.stderr


@pytest.mark.parametrize("n", ["0", "-3"])
def test_a_bad_concurrency_exits_2(tmp_path: Path, n: str) -> None:
    out = spectra("worker", "-c", str(tmp_path / "none.toml"), "--concurrency", n)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: --concurrency must be at least 1, got {n}"
