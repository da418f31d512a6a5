"""The agent side of spectra: model providers, tools and the agent loop."""

from .provider import (
    ModelProvider,
    ModelRequest,
    ProviderDone,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolSpec,
)

__all__ = [
    "ModelProvider",
    "ModelRequest",
    "ProviderDone",
    "ProviderError",
    "ProviderEvent",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallDelta",
    "ToolSpec",
]
