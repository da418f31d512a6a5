"""The public API is deliberate: every exported name exists and nothing leaks."""

from __future__ import annotations

import importlib

import pytest

import spectra_core

MODULES = [
    "spectra_core",
    "spectra_core.testing",
    "spectra_core.config",
    "spectra_core.serde",
    "spectra_core.store",
    "spectra_core.tree",
    "spectra_core.plugins",
    "spectra_core.hookspecs",
    "spectra_core.errors",
    "spectra_core.durations",
    "spectra_core.workers",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr!r}"


def test_core_exports_the_session_api() -> None:
    for name in [
        "SessionManager",
        "Session",
        "SessionStore",
        "SessionFilter",
        "UserMessage",
        "AssistantMessage",
        "ToolResultMessage",
        "TextContent",
        "ThinkingContent",
        "ToolCall",
        "ImageContent",
        "ConflictError",
        "SessionNotFound",
        "EntryNotFound",
        "SpectraError",
        "ConfigError",
        "PluginError",
        "hookimpl",
        "load_plugins",
    ]:
        assert name in spectra_core.__all__


def test_every_error_is_a_spectra_error() -> None:
    from spectra_core import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), spectra_core.SpectraError)


def test_core_never_imports_a_plugin() -> None:
    import pathlib

    root = pathlib.Path(spectra_core.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for plugin in ("spectra_memory", "spectra_fs", "spectra_sqlite", "spectra_redis"):
            assert f"import {plugin}" not in text and f"from {plugin}" not in text, path
