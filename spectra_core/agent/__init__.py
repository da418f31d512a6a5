"""The agent side of spectra: model providers, tools and the agent loop."""

from ._clean import (
    MAX_ARGUMENT_DEPTH,
    REPLACEMENT_CHARACTER,
    checked_arguments,
    checked_reply,
    clean_json,
    parse_arguments,
    replace_surrogates,
)
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
    "MAX_ARGUMENT_DEPTH",
    "REPLACEMENT_CHARACTER",
    "ModelProvider",
    "ModelRequest",
    "ProviderDone",
    "ProviderError",
    "ProviderEvent",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallDelta",
    "ToolSpec",
    "checked_arguments",
    "checked_reply",
    "clean_json",
    "parse_arguments",
    "replace_surrogates",
]
