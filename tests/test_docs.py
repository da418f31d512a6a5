"""Documentation stays complete: every hook, config section and backend option."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import attrs
import pytest

from spectra_core import BackendKind, hookspecs
from spectra_core.config import _SECTIONS, EngineSettings
from spectra_core.plugins import load_plugins

DOCS = Path(__file__).parent.parent / "docs"


def _hookspec_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("spectra_") and hasattr(fn, "spectra_spec")
    ]


def test_there_are_hookspecs() -> None:
    assert len(_hookspec_names()) >= 6


@pytest.mark.parametrize("hook", _hookspec_names())
def test_every_hook_is_documented(hook: str) -> None:
    headings = re.findall(r"^## (\w+)", (DOCS / "hooks.md").read_text(), re.M)
    assert hook in headings, f"docs/hooks.md has no '## {hook}' section"


@pytest.mark.parametrize("section", list(_SECTIONS))
def test_every_config_section_is_documented(section: str) -> None:
    assert f"[{section}]" in (DOCS / "configuration.md").read_text()


@pytest.mark.parametrize("field", [a.name for a in attrs.fields(EngineSettings)])
def test_engine_settings_documented(field: str) -> None:
    assert f"`{field}`" in (DOCS / "configuration.md").read_text()


@pytest.mark.needs_plugins
def test_every_option_of_our_backends_is_documented() -> None:
    text = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    registry = load_plugins(disabled=[])
    missing = []
    for plugin in registry.plugins:
        if not plugin.distribution.startswith("spectra-"):
            continue
        for kind_name, names in plugin.backends.items():
            for name in names:
                backend = registry.get(BackendKind(kind_name), name)
                for field in attrs.fields(backend.options):
                    if f"`{field.name}`" not in text:
                        missing.append(f"{plugin.distribution} {kind_name} {name}: {field.name}")
    assert not missing, "undocumented options: " + ", ".join(missing)
