"""Helpers shared by the sub-commands: config loading and error reporting."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..config import SpectraConfig, load_config
from ..errors import SpectraError
from ..plugins import PluginRegistry, load_plugins

DEFAULT_CONFIG = "spectra.toml"
CONFIG_ENV = "SPECTRA_CONFIG"


def add_config_option(parser: Any) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=None,
        help=f"config file (default: ${CONFIG_ENV} or ./{DEFAULT_CONFIG})",
    )


def config_path(arg: str | None) -> str:
    return arg or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def load(arg: str | None) -> tuple[SpectraConfig, PluginRegistry]:
    registry = load_plugins()
    return load_config(config_path(arg), registry), registry


def fail(exc: SpectraError, status: int = 1) -> int:
    """Print an error (each line of a multi-line one) on stderr and return ``status``."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)
    return status
