"""``spectra check --ping``: the backends are built and their health checks run."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

import attrs
import pytest

from spectra_core import hookimpl
from spectra_core.cli import main
from spectra_core.cli._check import ping_all
from spectra_core.config import parse_config
from spectra_core.plugins import PluginRegistry, PluginSource, load_plugins


@attrs.frozen
class ProbeOptions:
    behaviour: str = "ok"


class ProbeStore:
    """A store whose ping answers, fails, hangs or is missing, as its options say."""

    closed = 0

    def __init__(self, options: ProbeOptions) -> None:
        self.behaviour = options.behaviour
        if self.behaviour == "no ping":
            self.ping = None  # type: ignore[assignment]

    async def ping(self) -> None:
        if self.behaviour == "fails":
            raise ConnectionRefusedError("connection refused\nby 127.0.0.1:1")
        if self.behaviour == "hangs":
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        ProbeStore.closed += 1


@pytest.fixture
def registry() -> PluginRegistry:
    mod = types.ModuleType("probe")

    @hookimpl
    def spectra_register_session_stores(register):  # type: ignore[no-untyped-def]
        register("probe", ProbeStore, ProbeOptions)

    mod.spectra_register_session_stores = spectra_register_session_stores  # type: ignore[attr-defined]
    return load_plugins([PluginSource.of("probe", mod, "probe-spectra")], disabled=[])


@pytest.mark.parametrize(
    ("behaviour", "line"),
    [
        (
            "fails",
            "t.toml: $.store: probe: ConnectionRefusedError: connection refused by 127.0.0.1:1",
        ),
        ("hangs", "t.toml: $.store: probe: no answer within 0.05s"),
    ],
)
def test_a_failing_ping_is_one_line_naming_the_backend(
    registry: PluginRegistry, behaviour: str, line: str
) -> None:
    config = parse_config(
        {"store": {"backend": "probe", "behaviour": behaviour}}, "t.toml", registry
    )
    closed = ProbeStore.closed
    assert asyncio.run(ping_all(config, registry, 0.05)) == [line]
    assert ProbeStore.closed == closed + 1  # built, pinged, closed


@pytest.mark.parametrize("behaviour", ["ok", "no ping"])
def test_a_healthy_backend_passes(
    registry: PluginRegistry, behaviour: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config(
        {"store": {"backend": "probe", "behaviour": behaviour}}, "t.toml", registry
    )
    assert asyncio.run(ping_all(config, registry, 0.05)) == []
    assert capsys.readouterr().out.startswith("t.toml: $.store: probe: ok")


@pytest.mark.needs_plugins
def test_check_ping_reports_an_unusable_sqlite_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(
        f'[store]\nbackend = "sqlite"\npath = "{blocker}/s.db"\n\n'
        '[[limiter]]\nbackend = "memory"\nkey = "user"\nrequests_per_window = 5\nwindow = "1m"\n'
    )
    assert main(["check", str(cfg)]) == 0  # valid: only --ping reaches the database
    capsys.readouterr()
    assert main(["check", str(cfg), "--ping"]) == 1
    out = capsys.readouterr()
    (line,) = out.err.splitlines()
    assert line.startswith(f"{cfg}: $.store: sqlite: StoreError: cannot create")
    assert "Not a directory" in line
    assert f"{cfg}: $.limiter[0]: memory: ok (built; it has no health check)" in out.out


@pytest.mark.needs_plugins
def test_check_ping_passes_on_a_usable_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(f'[store]\nbackend = "sqlite"\npath = "{tmp_path}/s.db"\n')
    assert main(["check", str(cfg), "--ping"]) == 0
    assert f"{cfg}: $.store: sqlite: ok" in capsys.readouterr().out
