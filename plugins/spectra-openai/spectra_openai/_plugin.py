"""Registers the ``openai`` model provider with spectra."""

from __future__ import annotations

from spectra_core import Register, hookimpl

from ._options import OpenAIOptions
from ._provider import OpenAIProvider


@hookimpl
def spectra_register_model_providers(register: Register) -> None:
    register(
        "openai",
        OpenAIProvider.from_options,
        OpenAIOptions,
        description="OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LM Studio).",
    )
