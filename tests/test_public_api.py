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
    "spectra_core.backend",
    "spectra_core.tree",
    "spectra_core.plugins",
    "spectra_core.hookspecs",
    "spectra_core.errors",
    "spectra_core.durations",
    "spectra_core.event_log",
    "spectra_core.health",
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
        "SessionNotFoundError",
        "EntryNotFoundError",
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


def test_the_first_release_error_names_are_the_same_classes() -> None:
    from spectra_core import EntryNotFound, EntryNotFoundError, SessionNotFound
    from spectra_core.errors import SessionNotFound as FromErrors

    assert SessionNotFound is FromErrors is spectra_core.SessionNotFoundError
    assert EntryNotFound is EntryNotFoundError


def test_names_moved_to_the_backend_module_still_import_with_a_warning() -> None:
    from spectra_core import backend

    with pytest.warns(DeprecationWarning, match=r"spectra_core\.backend\.StoreBase"):
        from spectra_core import StoreBase
    assert StoreBase is backend.StoreBase
    assert "StoreBase" not in spectra_core.__all__
    with pytest.raises(AttributeError, match="no_such_name"):
        spectra_core.no_such_name  # noqa: B018


def test_backend_module_holds_what_a_store_author_needs() -> None:
    from spectra_core import backend

    for name in [
        "StoreBase",
        "SessionStore",
        "BranchLoadingStore",
        "prepare_save",
        "PendingSave",
        "session_from_stored",
        "ConflictError",
        "SessionNotFoundError",
        "keyset_sql",
        "page_of",
        "entry_to_json",
        "entry_from_json",
        "reset_after_fork",
        "hookimpl",
        "Register",
    ]:
        assert name in backend.__all__
