"""The plugin loader: discovery, isolation of broken plugins, duplicates, disabling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import attrs
import pytest

from spectra_core import BackendKind, PluginError, hookimpl
from spectra_core.plugins import PluginInfo, PluginRegistry, PluginSource, load_plugins


@attrs.frozen
class DummyOptions:
    size: int = 1


def _plugin(name: str, backend: str = "dummy", **extra: object) -> types.ModuleType:
    mod = types.ModuleType(name)

    @hookimpl
    def spectra_register_session_stores(register):  # type: ignore[no-untyped-def]
        register(backend, lambda options: ("store", options), DummyOptions)

    mod.spectra_register_session_stores = spectra_register_session_stores  # type: ignore[attr-defined]
    for key, value in extra.items():
        setattr(mod, key, value)
    return mod


def _own(reg: PluginRegistry) -> list[PluginInfo]:
    """The plugins a test loaded, without the built-in one."""
    return [p for p in reg.plugins if p.name != "builtin"]


def _failing_load() -> object:
    raise ImportError("No module named 'missing_driver'")


def test_registers_and_creates_backends() -> None:
    reg = load_plugins([PluginSource.of("dummy", _plugin("dummy"), "spectra-dummy")])
    assert reg.names(BackendKind.SESSION_STORE) == ["dummy"]
    assert reg.create(BackendKind.SESSION_STORE, "dummy", DummyOptions(3)) == (
        "store",
        DummyOptions(3),
    )
    (info,) = [p for p in reg.plugins if p.name != "builtin"]
    assert info.status == "ok" and info.backends == {"session_store": ["dummy"]}


def test_broken_plugin_does_not_take_others_down() -> None:
    reg = load_plugins(
        [
            PluginSource("sqlite", _failing_load, "spectra-sqlite", "0.1.0"),
            PluginSource.of("dummy", _plugin("dummy"), "spectra-dummy"),
        ]
    )
    assert reg.names(BackendKind.SESSION_STORE) == ["dummy"]
    broken = _own(reg)[0]
    assert broken.status == "broken" and "missing_driver" in (broken.error or "")
    assert "spectra-sqlite" in reg.errors[0]
    with pytest.raises(
        PluginError,
        match=r"unavailable: plugin 'sqlite' \(spectra-sqlite\) "
        "failed to load: ImportError",
    ):
        reg.get(BackendKind.SESSION_STORE, "sqlite")


def test_plugin_whose_hook_raises_is_broken_and_registers_nothing() -> None:
    mod = types.ModuleType("bad")

    @hookimpl
    def spectra_register_session_stores(register):  # type: ignore[no-untyped-def]
        register("half", lambda o: o, DummyOptions)
        raise RuntimeError("boom")

    mod.spectra_register_session_stores = spectra_register_session_stores  # type: ignore[attr-defined]
    reg = load_plugins([PluginSource.of("bad", mod)])
    assert _own(reg)[0].status == "broken"
    assert reg.names(BackendKind.SESSION_STORE) == []


def test_duplicate_backend_names_name_both_distributions() -> None:
    reg = load_plugins(
        [
            PluginSource.of("one", _plugin("one", "shared"), "spectra-one"),
            PluginSource.of("two", _plugin("two", "shared"), "acme-two"),
        ]
    )
    with pytest.raises(PluginError, match="spectra-one and acme-two"):
        reg.get(BackendKind.SESSION_STORE, "shared")
    assert any("spectra-one and acme-two" in e for e in reg.errors)


def test_misspelled_hookimpl_is_caught() -> None:
    mod = types.ModuleType("typo")

    @hookimpl
    def spectra_register_session_store(register):  # type: ignore[no-untyped-def]
        pass

    mod.spectra_register_session_store = spectra_register_session_store  # type: ignore[attr-defined]
    reg = load_plugins([PluginSource.of("typo", mod)])
    assert _own(reg)[0].status == "broken"
    assert "did you mean 'spectra_register_session_stores'" in (_own(reg)[0].error or "")


def test_hookimpl_with_wrong_arguments_is_caught() -> None:
    mod = types.ModuleType("args")

    @hookimpl
    def spectra_register_session_stores(reg, extra):  # type: ignore[no-untyped-def]
        pass

    mod.spectra_register_session_stores = spectra_register_session_stores  # type: ignore[attr-defined]
    reg = load_plugins([PluginSource.of("args", mod)])
    assert _own(reg)[0].status == "broken"


def test_options_must_be_attrs() -> None:
    mod = types.ModuleType("noattrs")

    @hookimpl
    def spectra_register_rate_limiters(register):  # type: ignore[no-untyped-def]
        register("x", lambda o: o, dict)

    mod.spectra_register_rate_limiters = spectra_register_rate_limiters  # type: ignore[attr-defined]
    reg = load_plugins([PluginSource.of("noattrs", mod)])
    assert "must be an attrs class" in (_own(reg)[0].error or "")


def test_disabled_plugins_are_not_loaded() -> None:
    loaded: list[str] = []

    def load() -> object:
        loaded.append("x")
        return _plugin("x")

    reg = load_plugins([PluginSource("x", load, "spectra-x")], disabled=["spectra-x"])
    assert loaded == []
    assert _own(reg)[0].status == "disabled"
    with pytest.raises(PluginError, match="is disabled"):
        reg.get(BackendKind.SESSION_STORE, "x")


def test_disable_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRA_DISABLE_PLUGINS", "a, b")
    reg = load_plugins(
        [PluginSource.of("a", _plugin("a", "ba")), PluginSource.of("c", _plugin("c", "bc"))]
    )
    assert [p.status for p in _own(reg)] == ["disabled", "ok"]


def test_unknown_backend_messages() -> None:
    reg = load_plugins([PluginSource.of("dummy", _plugin("dummy", "memory"))])
    with pytest.raises(PluginError, match="did you mean 'memory'"):
        reg.get(BackendKind.SESSION_STORE, "memroy")
    with pytest.raises(PluginError, match="pip install spectra-redis"):
        reg.get(BackendKind.SESSION_STORE, "redis")
    with pytest.raises(PluginError, match="available: 'memory'"):
        reg.get(BackendKind.SESSION_STORE, "zzz")


def _fake_distribution(site: Path, dist: str, ep_name: str, module: str, code: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(f"[spectra]\n{ep_name} = {module}\n")


def test_cli_reports_real_broken_and_duplicate_distributions(tmp_path: Path) -> None:
    """Real distributions on sys.path, found through real entry points, in a subprocess."""
    _fake_distribution(
        tmp_path, "acme-broken", "acme", "acme_broken_plugin", "import this_module_does_not_exist\n"
    )
    dup = """
        import attrs
        from spectra_core import hookimpl

        @attrs.frozen
        class Opts:
            pass

        @hookimpl
        def spectra_register_transports(register):
            register("pigeon", lambda o: o, Opts)
    """
    _fake_distribution(tmp_path, "acme-one", "one", "acme_one_plugin", dup)
    _fake_distribution(tmp_path, "acme-two", "two", "acme_two_plugin", dup)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SPECTRA_DISABLE_PLUGINS": ""}
    out = subprocess.run(
        [sys.executable, "-m", "spectra_core", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    report = json.loads(out.stdout)
    by_dist = {p["distribution"]: p for p in report["plugins"]}
    assert by_dist["acme-broken"]["status"] == "broken"
    assert "this_module_does_not_exist" in by_dist["acme-broken"]["error"]
    assert by_dist["acme-one"]["status"] == "ok"
    assert any("acme-one and acme-two" in e for e in report["errors"])
    text = subprocess.run(
        [sys.executable, "-m", "spectra_core", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "acme-broken 9.9" in text and "broken" in text
