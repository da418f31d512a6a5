"""``spectra sessions rm`` deletes only what the store recognises as one of its sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectra_core.cli import main

pytestmark = pytest.mark.needs_plugins


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path]:
    """An fs store's config and directory (created by a first run)."""
    directory = tmp_path / "sessions"
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(f'[store]\nbackend = "fs"\ndirectory = "{directory}"\n')
    assert main(["run", "hi", "--config", str(cfg), "--user", "ann"]) == 0
    return cfg, directory


def test_rm_leaves_other_jsonl_files_alone(
    store: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, directory = store
    notes = directory / "notes.jsonl"
    notes.write_text('{"note": "not a session"}\n')
    empty = directory / "empty.jsonl"
    empty.write_text("")
    for name in ("notes", "empty"):
        capsys.readouterr()
        assert main(["sessions", "rm", name, "--config", str(cfg)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: session '{name}'") and "not a readable session" in err
    assert notes.read_text() == '{"note": "not a session"}\n'
    assert empty.exists()


def test_rm_follows_no_symlink_out_of_the_directory(
    store: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, directory = store
    (session_file,) = directory.glob("*.jsonl")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / "victim.jsonl"
    victim.write_bytes(session_file.read_bytes())  # looks like a session, lives elsewhere
    link = directory / "link.jsonl"
    link.symlink_to(victim)
    capsys.readouterr()
    assert main(["sessions", "rm", "link", "--config", str(cfg)]) == 1
    assert "symbolic link" in capsys.readouterr().err
    assert link.is_symlink() and victim.read_bytes() == session_file.read_bytes()


def test_rm_deletes_a_real_session(
    store: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, directory = store
    (session_file,) = directory.glob("*.jsonl")
    header = json.loads(session_file.read_text().splitlines()[0])
    sid = header["session"]["id"]
    assert main(["sessions", "rm", sid, "--config", str(cfg)]) == 0
    assert not session_file.exists()
