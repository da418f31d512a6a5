"""The CLI's failure paths: one line on stderr, a non-zero status, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spectra_core.cli import main

pytestmark = pytest.mark.needs_plugins


def spectra(
    *args: str | bytes, cwd: Path, stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[bytes]:
    """A real ``spectra`` process; as root, without the capabilities that bypass file
    permissions (so a permission test means what it says)."""
    env = {**os.environ, "SPECTRA_HOME": str(cwd / "home"), "SPECTRA_DISABLE_PLUGINS": ""}
    env.pop("SPECTRA_CONFIG", None)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "spectra_core", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    return lines[0]


@pytest.fixture
def saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """A config on an fs store holding one session; returns (config, session id)."""
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(f'[store]\nbackend = "fs"\ndirectory = "{tmp_path}/sessions"\n')
    assert main(["run", "hello", "--config", str(cfg), "--user", "ann"]) == 0
    err = capsys.readouterr().err
    sid = next(x.split()[1] for x in err.splitlines() if x.startswith("session "))
    return cfg, sid


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("missing/folder/out.jsonl", "No such file or directory (the folder"),
        (".", "Is a directory"),
        ("/dev/full", "No space left on device"),
    ],
)
def test_export_to_a_bad_path_is_one_line(
    saved: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    reason: str,
) -> None:
    cfg, sid = saved
    path = target if target.startswith("/") else str(tmp_path / target)
    before = sorted(tmp_path.rglob("*"))
    status = main(["sessions", "export", sid, "-o", path, "--config", str(cfg)])
    out = capsys.readouterr()
    assert status == 1
    line = one_error_line(out.err)
    assert f"cannot write {path!r}: {reason}" in line
    assert out.out == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing left behind


def test_export_without_permission_and_stdout_on_a_full_disk(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    cfg, sid = saved
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    denied = spectra(
        "sessions", "export", sid, "-o", str(locked / "x.jsonl"), "-c", str(cfg), cwd=tmp_path
    )
    assert denied.returncode == 1
    assert "Permission denied" in one_error_line(denied.stderr.decode())
    assert list(locked.iterdir()) == []
    with open("/dev/full", "wb") as full:
        out = spectra("sessions", "export", sid, "-c", str(cfg), cwd=tmp_path, stdout=full.fileno())
    assert out.returncode == 1
    line = one_error_line(out.stderr.decode())
    assert line == "error: cannot write the output: No space left on device"


def test_an_argument_that_is_not_utf8_is_refused_before_anything(tmp_path: Path) -> None:
    out = spectra(b"run", b"\xff caf\xe9", cwd=tmp_path)
    assert out.returncode == 2
    line = one_error_line(out.stderr.decode())
    assert line == (
        "error: argument 2 is not valid UTF-8 text: b'\\xff caf\\xe9'; "
        "spectra takes its arguments in UTF-8"
    )
    assert not (tmp_path / "home").exists()  # no store was even opened


@pytest.mark.parametrize(
    ("user", "reason"),
    [("a\x1bb", "control character"), ("u" * 300, "maximum is 256"), (" ", "must not be empty")],
)
def test_a_bad_user_id_is_refused_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], user: str, reason: str
) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(f'[store]\nbackend = "fs"\ndirectory = "{tmp_path}/sessions"\n')
    assert main(["run", "hi", "--user", user, "--config", str(cfg)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "user id" in line and reason in line
    assert not (tmp_path / "sessions").exists()


@pytest.mark.parametrize("flag", ["--user", "--tenant"])
def test_sessions_list_refuses_a_bad_user_or_tenant_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text('[store]\nbackend = "memory"\n')
    assert main(["sessions", "list", flag, "a\tb", "--config", str(cfg)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{flag[2:]} id contains the control character '\\t'" in line
