"""Helpers shared by the spectra-openai tests."""

from __future__ import annotations

from typing import Any

from spectra_core import AssistantMessage, ModelRef, UserMessage
from spectra_core.agent import ModelProvider, ModelRequest, ProviderDone, ProviderEvent


def ask(text: str = "hi", model: str = "test-model", **kwargs: Any) -> ModelRequest:
    """A one-message request."""
    return ModelRequest(
        model=ModelRef(model, provider="openai"), messages=(UserMessage(text),), **kwargs
    )


async def collect(provider: ModelProvider, request: ModelRequest) -> list[ProviderEvent]:
    """Every event of one stream."""
    return [event async for event in provider.stream(request)]


async def final(provider: ModelProvider, request: ModelRequest) -> AssistantMessage:
    """The final message of one stream (checking it is the one and last ProviderDone)."""
    events = await collect(provider, request)
    done = [e for e in events if isinstance(e, ProviderDone)]
    assert len(done) == 1
    assert events[-1] is done[0]
    return done[0].message
