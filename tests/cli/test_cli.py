"""The spectra command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def spectra(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPECTRA_DISABLE_PLUGINS": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "spectra_core", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_plugins_json_lists_installed_plugins() -> None:
    out = spectra("plugins", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"plugins", "errors"}
    for plugin in report["plugins"]:
        assert {"name", "distribution", "version", "status", "backends"} <= set(plugin)


def test_check_broken_config_exits_2_with_every_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[engine]\nsession_timeout = "forever"\n\n[queue]\nbackend = "redis"\n\n'
        '[[limiter]]\nbackend = "nope"\nkey = "user"\n'
    )
    # the redis queue is a known backend that cannot be used here: spectra-redis is
    # either not installed (the core session) or blocked
    out = spectra("check", str(cfg), env={"SPECTRA_DISABLE_PLUGINS": "redis"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3, out.stderr
    assert all(line.startswith(f"{cfg}: $.") for line in lines)
    (queue,) = [line for line in lines if "$.queue.backend: job queue backend 'redis'" in line]
    installed = importlib.util.find_spec("spectra_redis") is not None
    assert ("(spectra-redis) is disabled" if installed else "pip install spectra-redis") in queue
    assert "$.engine.session_timeout" in out.stderr
    assert out.stdout == ""


def test_check_malformed_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[store\n")
    out = spectra("check", str(cfg))
    assert out.returncode == 2 and "invalid TOML" in out.stderr


def test_check_missing_file(tmp_path: Path) -> None:
    out = spectra("check", str(tmp_path / "none.toml"))
    assert out.returncode == 2 and "config file not found" in out.stderr


@pytest.mark.needs_plugins
def test_check_valid_config(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text('[engine]\nengine_id = "${HOSTNAME:-x}"\n\n[store]\nbackend = "memory"\n')
    out = spectra("check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "ok (store=memory)" in out.stdout


@pytest.mark.needs_plugins
def test_sessions_errors_are_clear(tmp_path: Path) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text('[store]\nbackend = "memory"\n')
    missing = spectra("sessions", "show", "nope", "--config", str(cfg))
    assert missing.returncode == 1 and "session 'nope' not found" in missing.stderr
    bad = spectra("sessions", "rm", "../etc", "--config", str(cfg))
    assert bad.returncode == 1 and "not allowed" in bad.stderr
    listed = spectra("sessions", "list", cwd=tmp_path)  # ./spectra.toml by default
    assert listed.returncode == 0 and listed.stdout == ""


def test_sessions_with_a_missing_config_file(tmp_path: Path) -> None:
    out = spectra("sessions", "list", "--config", str(tmp_path / "spectra.toml"))
    assert out.returncode == 2 and "spectra.toml: config file not found" in out.stderr


@pytest.mark.needs_plugins
def test_sessions_without_config_see_what_run_wrote(tmp_path: Path) -> None:
    # No config anywhere: run and sessions both use the offline setup under SPECTRA_HOME.
    home = {"SPECTRA_HOME": str(tmp_path / "home")}
    ran = spectra("run", "hello there", cwd=tmp_path, env=home)
    assert ran.returncode == 0, ran.stderr
    session_id = ran.stderr.split("continue with: spectra run --session ")[1].split()[0]
    listed = spectra("sessions", "list", cwd=tmp_path, env=home)
    assert listed.returncode == 0, listed.stderr
    assert session_id in listed.stdout
    shown = spectra("sessions", "show", session_id, cwd=tmp_path, env=home)
    assert shown.returncode == 0 and "hello there" in shown.stdout


@pytest.mark.needs_plugins
@pytest.mark.parametrize(
    "store", ['backend = "fs"\ndirectory = "{d}/sessions"', 'backend = "sqlite"\npath = "{d}/s.db"']
)
def test_sessions_commands_on_durable_stores(tmp_path: Path, store: str) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text("[store]\n" + store.format(d=tmp_path) + "\n")
    made = spectra("run", "remember me", "--config", str(cfg), "--user", "ann")
    assert made.returncode == 0, made.stderr
    sid = next(x.split()[1] for x in made.stderr.splitlines() if x.startswith("session "))
    listed = spectra("sessions", "list", "--json", "--config", str(cfg))
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(x) for x in listed.stdout.splitlines()]
    assert row["id"] == sid and row["user_id"] == "ann"
    shown = spectra("sessions", "show", sid, "--config", str(cfg))
    assert "user: remember me" in shown.stdout and "assistant: echo: remember me" in shown.stdout
    tree = spectra("sessions", "tree", sid, "--config", str(cfg))
    assert tree.returncode == 0 and "* " in tree.stdout
    out = tmp_path / "export.jsonl"
    exported = spectra("sessions", "export", sid, "-o", str(out), "--config", str(cfg))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["type"] == "session" and lines[0]["id"] == sid
    assert {x["type"] for x in lines[1:]} == {"audit", "message"}
    assert spectra("sessions", "rm", sid, "--config", str(cfg)).returncode == 0
    gone = spectra("sessions", "show", sid, "--config", str(cfg))
    assert gone.returncode == 1 and "not found" in gone.stderr
