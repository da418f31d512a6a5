"""Helpers shared by the sub-commands: config loading and error reporting."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..config import SpectraConfig, load_config, parse_config
from ..errors import SpectraError
from ..plugins import BackendKind, PluginRegistry, load_plugins

DEFAULT_CONFIG = "spectra.toml"
CONFIG_ENV = "SPECTRA_CONFIG"


def add_config_option(parser: Any) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=None,
        help=f"config file (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG} if it exists, "
        "else the offline setup spectra run uses)",
    )


def spectra_home() -> Path:
    return Path(os.environ.get("SPECTRA_HOME") or Path.home() / ".local/share/spectra")


def default_config(registry: PluginRegistry) -> dict[str, Any]:
    """The offline setup: echo provider, the best local store installed."""
    stores = registry.names(BackendKind.SESSION_STORE)
    home = spectra_home()
    if "sqlite" in stores:
        store: dict[str, Any] = {"backend": "sqlite", "path": str(home / "sessions.db")}
    elif "fs" in stores:
        store = {"backend": "fs", "directory": str(home / "sessions")}
    elif "memory" in stores:
        store = {"backend": "memory"}
    else:
        raise SpectraError("no session store installed: pip install spectra-sqlite")
    return {"store": store, "model": {"provider": "echo"}}


def load(arg: str | None) -> tuple[SpectraConfig, PluginRegistry]:
    """The config of ``--config`` (``arg``), else ``$SPECTRA_CONFIG``, else
    ``./spectra.toml`` if it exists, else the offline setup (:func:`default_config`): the
    same for every sub-command, so ``spectra sessions`` sees what ``spectra run`` wrote.
    A file that is named but missing is an error."""
    registry = load_plugins()
    path = arg or os.environ.get(CONFIG_ENV)
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    if path is not None:
        return load_config(path, registry), registry
    return parse_config(default_config(registry), "<offline defaults>", registry), registry


def fail(exc: SpectraError, status: int = 1) -> int:
    """Print an error (each line of a multi-line one) on stderr and return ``status``."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)
    return status
