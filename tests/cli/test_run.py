"""``spectra run`` and ``spectra chat`` as a user runs them: real subprocesses, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_plugins


def spectra(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPECTRA_HOME": str(home), "SPECTRA_DISABLE_PLUGINS": ""}
    env.pop("SPECTRA_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "spectra_core", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
        cwd=home,
    )


def session_of(stderr: str) -> str:
    line = next(x for x in stderr.splitlines() if x.startswith("session "))
    return line.split()[1]


def test_run_streams_the_answer_and_resumes(tmp_path: Path) -> None:
    first = spectra(tmp_path, "run", "What is Rust?", "--user", "ann")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "echo: What is Rust?\n"
    sid = session_of(first.stderr)
    again = spectra(tmp_path, "run", "And Go?", "--session", sid, "--user", "ann")
    assert again.returncode == 0 and again.stdout == "echo: And Go?\n"
    other = spectra(tmp_path, "run", "peek", "--session", sid, "--user", "eve")
    assert other.returncode == 1 and "not found" in other.stderr
    missing = spectra(tmp_path, "run", "hi", "--session", "no-such")
    assert missing.returncode == 1 and "session 'no-such' not found" in missing.stderr
    empty = spectra(tmp_path, "run", "   ")
    assert empty.returncode == 1 and "input is empty" in empty.stderr


def test_logs_are_json_lines_with_run_context(tmp_path: Path) -> None:
    out = spectra(tmp_path, "run", "hi", "--user", "ann", "--verbose")
    assert out.returncode == 0
    lines = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    run_lines = [x for x in lines if x.get("run_id")]
    assert {x["event"] for x in run_lines} >= {"run started", "run finished"}
    for line in run_lines:
        assert {"engine_id", "session_id", "run_id", "user_id", "tenant_id"} <= set(line)
        assert line["user_id"] == "ann"


def test_chat_tree_branch_fork_and_resume(tmp_path: Path) -> None:
    script = "first question\n/show\n/sessions\n/quit\n"
    out = spectra(tmp_path, "chat", "--user", "ann", stdin=script)
    assert out.returncode == 0, out.stderr
    assert "echo: first question" in out.stdout
    user_entry = re.search(r"([0-9a-f]{12})  user: first question", out.stdout)
    listed = re.search(r"([0-9a-f]{32})  \d{4}-\d\d-\d\d", out.stdout)
    assert user_entry and listed, out.stdout
    user_entry, sid = user_entry.group(1), listed.group(1)
    script = (
        f"/resume {sid}\n/branch {user_entry}\nsecond answer please\n/tree\n/fork\n"
        "in the fork\n/quit\n"
    )
    out = spectra(tmp_path, "chat", "--user", "ann", stdin=script)
    assert out.returncode == 0, out.stderr
    assert f"resumed {sid}" in out.stdout
    assert f"leaf moved to {user_entry}" in out.stdout
    assert "forked into" in out.stdout
    assert "echo: in the fork" in out.stdout
    tree = [x for x in out.stdout.splitlines() if "├─" in x or "└─" in x]
    assert any("├─" in x for x in tree), "the branch shows as a fork in the tree"


def test_chat_without_session_and_unknown_commands(tmp_path: Path) -> None:
    out = spectra(tmp_path, "chat", stdin="/tree\n/frobnicate\n/resume nope\n")
    assert out.returncode == 0
    assert "no session yet" in out.stdout
    assert "session 'nope' not found" in out.stderr


def test_run_with_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[store]\nbackend = "sqlit"\n')
    out = spectra(tmp_path, "run", "hi", "--config", str(cfg))
    assert out.returncode == 2 and "did you mean 'sqlite'" in out.stderr
