"""Content blocks and messages: what a user, the model and a tool say.

Import these names from :mod:`spectra_core.models` (or ``spectra_core``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeAlias

import attrs

from ._checks import blocks_of, instance, json_object, optional, text
from .errors import InvalidArgumentError

__all__ = [
    "AssistantContent",
    "AssistantMessage",
    "ContentBlock",
    "ImageContent",
    "Message",
    "TextContent",
    "ThinkingContent",
    "ToolCall",
    "ToolResultMessage",
    "Usage",
    "UserContent",
    "UserMessage",
]


# --- content blocks -------------------------------------------------------------------


@attrs.frozen
class TextContent:
    """Plain text."""

    text: str = attrs.field(validator=text)
    type: ClassVar[str] = "text"


@attrs.frozen
class ThinkingContent:
    """Model reasoning, kept for display and provenance."""

    thinking: str = attrs.field(validator=text)
    signature: str | None = attrs.field(default=None, validator=optional(text))
    type: ClassVar[str] = "thinking"


@attrs.frozen
class ToolCall:
    """A request from the model to run tool ``name`` with ``arguments``."""

    id: str = attrs.field(validator=text)
    name: str = attrs.field(validator=text)
    arguments: dict[str, Any] = attrs.field(factory=dict, validator=json_object)
    type: ClassVar[str] = "tool_call"


@attrs.frozen
class ImageContent:
    """An image, base64-encoded in ``data``."""

    data: str = attrs.field(validator=text)
    mime_type: str = attrs.field(validator=text)
    type: ClassVar[str] = "image"


ContentBlock: TypeAlias = TextContent | ThinkingContent | ToolCall | ImageContent
UserContent: TypeAlias = TextContent | ImageContent
AssistantContent: TypeAlias = TextContent | ThinkingContent | ToolCall


def _blocks(value: str | Iterable[Any]) -> tuple[Any, ...]:
    """Accept a plain string as one text block, and any iterable of blocks as a tuple."""
    if isinstance(value, str):
        return (TextContent(value),)
    try:
        return tuple(value)
    except TypeError:
        raise InvalidArgumentError(
            f"content must be a string or content blocks, got {type(value).__name__}"
        ) from None


_user_blocks = blocks_of(TextContent, ImageContent)

# --- messages -------------------------------------------------------------------------


@attrs.frozen
class Usage:
    """Token counts reported by the provider for one assistant message."""

    input_tokens: int = attrs.field(default=0, validator=instance(int))
    output_tokens: int = attrs.field(default=0, validator=instance(int))
    cache_read_tokens: int = attrs.field(default=0, validator=instance(int))
    cache_write_tokens: int = attrs.field(default=0, validator=instance(int))

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@attrs.frozen
class UserMessage:
    """What the user said; ``UserMessage("hi")`` is one text block."""

    content: tuple[UserContent, ...] = attrs.field(converter=_blocks, validator=_user_blocks)
    role: ClassVar[str] = "user"

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextContent))


@attrs.frozen
class AssistantMessage:
    """What the model answered, with its tool calls, usage and why it stopped."""

    content: tuple[AssistantContent, ...] = attrs.field(
        converter=_blocks, validator=blocks_of(TextContent, ThinkingContent, ToolCall)
    )
    model: str | None = attrs.field(default=None, validator=optional(text))
    provider: str | None = attrs.field(default=None, validator=optional(text))
    usage: Usage | None = attrs.field(default=None, validator=optional(instance(Usage)))
    stop_reason: str | None = attrs.field(default=None, validator=optional(text))
    error_message: str | None = attrs.field(default=None, validator=optional(text))
    role: ClassVar[str] = "assistant"

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextContent))

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(b for b in self.content if isinstance(b, ToolCall))


@attrs.frozen
class ToolResultMessage:
    """The result of one tool call, sent back to the model."""

    tool_call_id: str = attrs.field(validator=text)
    tool_name: str = attrs.field(validator=text)
    content: tuple[UserContent, ...] = attrs.field(converter=_blocks, validator=_user_blocks)
    is_error: bool = attrs.field(default=False, validator=instance(bool))
    role: ClassVar[str] = "tool_result"

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextContent))


Message: TypeAlias = UserMessage | AssistantMessage | ToolResultMessage
