"""Backends that ship with spectra-core itself."""

from __future__ import annotations

from typing import Any

from ..hookspecs import Register, hookimpl
from .builtin import EchoOptions, EchoProvider, ScriptedOptions, ScriptedProvider


@hookimpl
def spectra_register_model_providers(register: Register) -> None:
    register(
        "echo",
        EchoProvider.from_options,
        EchoOptions,
        description="Answers with the user's message; offline, deterministic.",
    )
    register(
        "scripted",
        ScriptedProvider.from_options,
        ScriptedOptions,
        description="Plays back replies given in advance.",
    )


@hookimpl
def spectra_register_commands(subparsers: Any) -> None:
    from ..workers._command import add_worker_parser

    add_worker_parser(subparsers)
