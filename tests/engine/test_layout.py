"""The engine's shape: a facade that takes ready providers and never imports plugins."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spectra_core.engine
from spectra_core import SessionManager
from spectra_core.config import build_engine, parse_config, provider_resolver
from spectra_core.engine import RunStatus, SessionEngine
from spectra_core.plugins import load_plugins
from spectra_core.testing import FakeClock

ENGINE = Path(spectra_core.engine.__file__).parent


@pytest.mark.parametrize("module", sorted(p.name for p in ENGINE.glob("*.py")))
def test_engine_modules_do_not_import_the_plugin_registry(module: str) -> None:
    tree = ast.parse((ENGINE / module).read_text())
    imported = [
        (node.module or "", node.level)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ] + [(a.name, 0) for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m, _ in imported if m.endswith("plugins")], imported


def test_engine_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in ENGINE.glob("*.py")}
    assert sizes["engine.py"] <= 340 and max(sizes.values()) < 400, sizes


@pytest.mark.needs_plugins
async def test_providers_named_by_a_model_come_from_assembly(
    manager: SessionManager, clock: FakeClock
) -> None:
    registry = load_plugins(disabled=[])
    engine = build_engine(
        parse_config({"store": {"backend": "memory"}}, registry=registry), registry
    )
    assert isinstance(engine, SessionEngine)
    engine.start()
    result = await engine.run("u", "hi", options={"model": {"id": "s", "provider": "scripted"}})
    assert result.status is RunStatus.FAILED  # the scripted provider, built with no replies
    assert "no step left" in (result.error or "")
    await engine.stop()
    resolve = provider_resolver(registry)
    assert type(resolve("echo")).__name__ == "EchoProvider"


@pytest.mark.needs_plugins
async def test_registry_keyword_still_works_with_a_deprecation_warning(
    manager: SessionManager, clock: FakeClock
) -> None:
    with pytest.warns(DeprecationWarning, match="resolve_provider"):
        engine = SessionEngine(manager, clock=clock, registry=load_plugins(disabled=[]))
    engine.start()
    result = await engine.run("u", "hi", options={"model": {"id": "s", "provider": "scripted"}})
    assert "no step left" in (result.error or "")
    await engine.stop()
