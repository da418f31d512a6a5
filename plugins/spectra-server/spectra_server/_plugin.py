"""Registers the ``spectra serve`` command with spectra."""

from __future__ import annotations

from typing import Any

from spectra_core import hookimpl


@hookimpl
def spectra_register_commands(subparsers: Any) -> None:
    from ._serve import add_parser

    add_parser(subparsers)
