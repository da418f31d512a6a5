"""Built-in deterministic model providers: ``echo`` (the offline default) and ``scripted``
(replies and tool calls given in advance, for tests and demos)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import attrs

from ..models import AssistantMessage, TextContent, ThinkingContent, ToolCall, Usage, UserMessage
from ._clean import replace_surrogates
from .provider import (
    ModelRequest,
    ProviderDone,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)

__all__ = ["EchoOptions", "EchoProvider", "ScriptStep", "ScriptedOptions", "ScriptedProvider"]

ScriptStep: TypeAlias = (
    AssistantMessage
    | str
    | BaseException
    | Callable[[ModelRequest], AssistantMessage | Awaitable[AssistantMessage]]
)


def _chunks(text: str, size: int) -> Iterable[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


async def stream_message(
    message: AssistantMessage, chunk_size: int = 8
) -> AsyncIterator[ProviderEvent]:
    """Stream a complete message as deltas, then :class:`ProviderDone`."""
    index = 0
    for block in message.content:
        if isinstance(block, TextContent):
            for piece in _chunks(block.text, chunk_size):
                yield TextDelta(piece)
        elif isinstance(block, ThinkingContent):
            for piece in _chunks(block.thinking, chunk_size):
                yield ThinkingDelta(piece)
        elif isinstance(block, ToolCall):
            yield ToolCallDelta(index, id=block.id, name=block.name)
            for piece in _chunks(_arguments_text(block.arguments), chunk_size):
                yield ToolCallDelta(index, arguments_delta=piece)
            index += 1
    yield ProviderDone(message)


def _arguments_text(arguments: Any) -> str:
    """The arguments as the JSON a model would stream (their repr if they are not JSON:
    the final message is then refused by the agent loop, naming the call)."""
    try:
        return json.dumps(arguments)
    except (TypeError, ValueError, RecursionError):
        return repr(arguments)


def _last_user_text(request: ModelRequest) -> str:
    for m in reversed(request.messages):
        if isinstance(m, UserMessage):
            return m.text
    return ""


@attrs.frozen
class EchoOptions:
    """Options of the ``echo`` provider."""

    prefix: str = "echo: "
    chunk_size: int = attrs.field(default=8, validator=attrs.validators.ge(1))


class EchoProvider:
    """Answers with the last user message, prefixed; works offline, costs nothing."""

    def __init__(self, prefix: str = "echo: ", chunk_size: int = 8) -> None:
        self.prefix = prefix
        self.chunk_size = chunk_size

    @classmethod
    def from_options(cls, options: EchoOptions) -> EchoProvider:
        return cls(options.prefix, options.chunk_size)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        text = self.prefix + _last_user_text(request)
        usage = Usage(
            input_tokens=sum(len(getattr(m, "text", "").split()) for m in request.messages),
            output_tokens=len(text.split()),
        )
        message = AssistantMessage(
            text, model=request.model.id, provider="echo", usage=usage, stop_reason="stop"
        )
        async for event in stream_message(message, self.chunk_size):
            yield event

    async def aclose(self) -> None:
        """Nothing to release."""


@attrs.frozen
class ScriptedOptions:
    """Options of the ``scripted`` provider: the replies to give, in order."""

    replies: list[str] = attrs.field(factory=list)
    chunk_size: int = attrs.field(default=8, validator=attrs.validators.ge(1))


class ScriptedProvider:
    """Plays back a script: each model call takes the next step.

    A step is an :class:`AssistantMessage` (tool calls included), a string (a text
    reply), an exception to raise, or a (sync or async) callable of the request
    returning a message. ``requests`` records what each call received.
    """

    def __init__(self, steps: Iterable[ScriptStep] = (), chunk_size: int = 8) -> None:
        self._steps: deque[ScriptStep] = deque(steps)
        self.chunk_size = chunk_size
        self.requests: list[ModelRequest] = []

    @classmethod
    def from_options(cls, options: ScriptedOptions) -> ScriptedProvider:
        return cls(options.replies, options.chunk_size)

    def add(self, *steps: ScriptStep) -> None:
        """Append steps to the script."""
        self._steps.extend(steps)

    @property
    def remaining(self) -> int:
        return len(self._steps)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        self.requests.append(request)
        if not self._steps:
            raise ProviderError(
                "scripted provider has no step left for this call; add more steps",
                provider="scripted",
            )
        step = self._steps.popleft()
        message = await _resolve(step, request)
        async for event in stream_message(message, self.chunk_size):
            yield event

    async def aclose(self) -> None:
        """Nothing to release."""


async def _resolve(step: ScriptStep, request: ModelRequest) -> AssistantMessage:
    if isinstance(step, BaseException):
        raise step
    if isinstance(step, str):  # a scripted reply is model output: stored safely
        return AssistantMessage(
            replace_surrogates(step),
            model=request.model.id,
            provider="scripted",
            stop_reason="stop",
        )
    if isinstance(step, AssistantMessage):
        return step
    result: Any = step(request)
    if isinstance(result, Awaitable):
        result = await result
    if isinstance(result, str):
        return AssistantMessage(
            replace_surrogates(result),
            model=request.model.id,
            provider="scripted",
            stop_reason="stop",
        )
    if not isinstance(result, AssistantMessage):
        raise ProviderError(f"script step returned {type(result).__name__}, not a message")
    return result
