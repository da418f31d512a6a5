"""Making what models and tools produce safe to store and to send on.

Text is stored as UTF-8, which cannot hold a surrogate code point (U+D800-U+DFFF): a
Python string can (``json.loads('"\\ud800"')``), and one such character in a model reply
or a tool result used to make every later save of the session fail. The policy: every
surrogate code point in model output and tool results becomes U+FFFD (the replacement
character), character by character, so the concatenated deltas of a stream equal the
stored text. Tool call arguments must be a JSON object that survives a round trip
(string keys, finite numbers, at most :data:`MAX_ARGUMENT_DEPTH` levels deep).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..models import AssistantMessage, TextContent, ThinkingContent, ToolCall, Usage
from .provider import ProviderError

__all__ = [
    "MAX_ARGUMENT_DEPTH",
    "REPLACEMENT_CHARACTER",
    "checked_arguments",
    "checked_reply",
    "clean_json",
    "describe_exception",
    "parse_arguments",
    "replace_surrogates",
]

#: What a surrogate code point in model output or a tool result is replaced with.
REPLACEMENT_CHARACTER = "\ufffd"

#: Nesting levels allowed in tool call arguments (deeper values cannot be stored safely).
MAX_ARGUMENT_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD (the same object when
    there is none)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def clean_json(value: Any) -> Any:
    """A decoded JSON value with surrogates replaced in every string and key."""
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, dict):
        return {replace_surrogates(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def _depth_ok(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` containers (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is made of dict (string keys), list, str, int, finite float,
    bool and None only."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            return False
    return True


def checked_arguments(value: Any) -> dict[str, Any] | None:
    """Tool call arguments made safe (surrogates replaced), or ``None`` when they are not
    a JSON object that can be stored: not a dict, a key that is not a string, a value
    that is not plain JSON or not finite, or deeper than :data:`MAX_ARGUMENT_DEPTH`."""
    if not isinstance(value, dict) or not _depth_ok(value, MAX_ARGUMENT_DEPTH):
        return None
    if not _plain_json(value):
        return None
    cleaned: dict[str, Any] = clean_json(value)
    return cleaned


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """Arguments streamed as JSON text, made safe; ``None`` if they are not a JSON object
    that can be stored (invalid JSON, another JSON value, NaN, too deep)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant) if raw.strip() else {}
    except (ValueError, RecursionError):
        return None
    return checked_arguments(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: message"`` for any exception, even one whose ``__str__`` raises."""
    try:
        text = str(exc)
    except BaseException:  # a broken __str__ must not take the run down
        text = f"<{type(exc).__name__} whose str() raised>"
    name = replace_surrogates(type(exc).__name__)
    return f"{name}: {replace_surrogates(text)}" if text else name


def _text(value: Any, what: str, provider: str | None, optional: bool = True) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ProviderError(
            f"the model reply's {what} should be a string, got {type(value).__name__}",
            provider=provider,
        )
    return replace_surrogates(value)


def checked_reply(message: Any, provider: str | None = None) -> AssistantMessage:
    """The final message of a provider made safe to store, or :class:`ProviderError`
    (not retryable) naming what is wrong with it.

    Surrogates in every string become U+FFFD; the content must be text, thinking and
    tool call blocks; tool call arguments must pass :func:`checked_arguments`.
    """
    if not isinstance(message, AssistantMessage):
        raise ProviderError(
            f"the provider's final message should be an AssistantMessage, "
            f"got {type(message).__name__}",
            provider=provider,
        )
    content: list[TextContent | ThinkingContent | ToolCall] = []
    for n, block in enumerate(message.content):
        where = f"content[{n}]"
        if isinstance(block, TextContent):
            content.append(TextContent(_text(block.text, f"{where}.text", provider, False)))
        elif isinstance(block, ThinkingContent):
            content.append(
                ThinkingContent(
                    _text(block.thinking, f"{where}.thinking", provider, False),
                    _text(block.signature, f"{where}.signature", provider),
                )
            )
        elif isinstance(block, ToolCall):
            content.append(_checked_call(block, where, provider))
        else:
            raise ProviderError(
                f"the model reply's {where} is a {type(block).__name__}; an assistant "
                "message holds text, thinking and tool call blocks only",
                provider=provider,
            )
    usage = message.usage
    if usage is not None and not (
        isinstance(usage, Usage)
        and all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
            )
        )
    ):
        raise ProviderError(
            f"the model reply's usage should be a Usage of integers, got {usage!r}",
            provider=provider,
        )
    return AssistantMessage(
        tuple(content),
        model=_text(message.model, "model", provider),
        provider=_text(message.provider, "provider", provider),
        usage=usage,
        stop_reason=_text(message.stop_reason, "stop_reason", provider),
        error_message=_text(message.error_message, "error_message", provider),
    )


def _checked_call(call: ToolCall, where: str, provider: str | None) -> ToolCall:
    name = _text(call.name, f"{where}.name", provider, False)
    arguments = checked_arguments(call.arguments)
    if arguments is None:
        shown = _preview(call.arguments)
        raise ProviderError(
            f"the model called tool {name!r} ({where}) with arguments that are not a JSON "
            f"object that can be stored (string keys, finite numbers, at most "
            f"{MAX_ARGUMENT_DEPTH} levels): {shown}",
            provider=provider,
        )
    return ToolCall(_text(call.id, f"{where}.id", provider, False), name, arguments)


def _preview(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except BaseException:  # includes RecursionError of a deep value
        text = f"<{type(value).__name__}>"
    text = replace_surrogates(text)
    return text if len(text) <= limit else text[:limit] + "..."
