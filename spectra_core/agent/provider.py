"""The model provider contract: a request in, a stream of deltas and one final message out.

A provider backend (registered through ``spectra_register_model_providers``) implements
:class:`ModelProvider`. It yields :class:`TextDelta`, :class:`ThinkingDelta` and
:class:`ToolCallDelta` as the model produces them, then exactly one
:class:`ProviderDone` carrying the complete :class:`~spectra_core.AssistantMessage`
(with usage and stop reason). Failures are raised as :class:`ProviderError`, saying
whether a retry may succeed and when.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeAlias, runtime_checkable

import attrs

from ..errors import SpectraError
from ..models import AssistantMessage, Message, ModelRef

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


@attrs.frozen
class ToolSpec:
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})


@attrs.frozen(kw_only=True)
class ModelRequest:
    """Everything a provider needs for one model call."""

    model: ModelRef
    system_prompt: str | None = None
    messages: tuple[Message, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    temperature: float | None = None
    max_tokens: int | None = None


@attrs.frozen
class TextDelta:
    """More answer text."""

    text: str


@attrs.frozen
class ThinkingDelta:
    """More reasoning text."""

    thinking: str


@attrs.frozen
class ToolCallDelta:
    """Part of tool call number ``index``: its id and name arrive first, then argument
    JSON in pieces (``arguments_delta``)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments_delta: str = ""


@attrs.frozen
class ProviderDone:
    """The complete assistant message; always the last event of a successful stream."""

    message: AssistantMessage


ProviderEvent: TypeAlias = TextDelta | ThinkingDelta | ToolCallDelta | ProviderDone


class ProviderError(SpectraError):
    """A model call failed. ``retryable`` says whether trying again may help (429, 5xx,
    connection errors), ``retry_after`` how long the provider asked us to wait."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
        provider: str | None = None,
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.status_code = status_code
        self.provider = provider
        super().__init__(message)


@runtime_checkable
class ModelProvider(Protocol):
    """A model backend. ``stream`` is an async generator of :data:`ProviderEvent`;
    ``aclose`` releases its HTTP client."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]: ...

    async def aclose(self) -> None: ...
