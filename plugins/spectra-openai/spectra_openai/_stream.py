"""Folding streamed chat completion chunks into deltas and one assistant message."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from spectra_core import AssistantMessage, TextContent, ThinkingContent, ToolCall, Usage
from spectra_core.agent import (
    MAX_ARGUMENT_DEPTH,
    ProviderEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    checked_arguments,
    replace_surrogates,
)
from spectra_core.models import AssistantContent

__all__ = ["STOP_REASONS", "ChunkError", "StreamState"]

#: OpenAI ``finish_reason`` -> our ``stop_reason``; others are kept as they are.
STOP_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}

#: Delta keys that carry reasoning text, by server (vLLM/DeepSeek/llama.cpp; Ollama/OpenRouter).
_REASONING_KEYS = ("reasoning_content", "reasoning")


class ChunkError(ValueError):
    """A chunk that does not look like a chat completion chunk."""


@attrs.define
class _PendingCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = attrs.field(factory=list)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """A string field, surrogates (a ``\\ud800`` escape decodes to one) made U+FFFD."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return replace_surrogates(value)
    raise ChunkError(f"{where}.{key} should be a string, got {value!r}")


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChunkError(f"{where}.{key} should be an integer, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ChunkError(f"{where} should be an object, got {value!r}")
    return value


@attrs.define
class StreamState:
    """Everything received so far for one streamed completion."""

    model: str
    text: list[str] = attrs.field(factory=list)
    thinking: list[str] = attrs.field(factory=list)
    calls: dict[int, _PendingCall] = attrs.field(factory=dict)
    order: list[int] = attrs.field(factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    chunks: int = 0

    def feed(self, chunk: Any) -> list[ProviderEvent]:
        """The events one chunk (a decoded JSON object) produces; :class:`ChunkError` if
        it is not a chat completion chunk."""
        self.chunks += 1
        data = _mapping(chunk, f"chunk {self.chunks}")
        where = f"chunk {self.chunks}"
        if isinstance(data.get("model"), str) and data["model"]:
            self.model = data["model"]
        if data.get("usage") is not None:
            self.usage = self._usage(_mapping(data["usage"], f"{where}.usage"), where)
        choices = data.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise ChunkError(f"{where}.choices should be a list, got {choices!r}")
        events: list[ProviderEvent] = []
        for n, raw in enumerate(choices):
            choice = _mapping(raw, f"{where}.choices[{n}]")
            if _int(choice, "index", f"{where}.choices[{n}]") != 0:
                continue  # we ask for one choice; ignore any other
            events += self._choice(choice, f"{where}.choices[{n}]")
        return events

    def _usage(self, usage: Mapping[str, Any], where: str) -> Usage:
        details = usage.get("prompt_tokens_details")
        cached = 0
        if isinstance(details, Mapping):
            cached = _int(details, "cached_tokens", f"{where}.usage.prompt_tokens_details")
        return Usage(
            input_tokens=_int(usage, "prompt_tokens", f"{where}.usage"),
            output_tokens=_int(usage, "completion_tokens", f"{where}.usage"),
            cache_read_tokens=cached,
        )

    def _choice(self, choice: Mapping[str, Any], where: str) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        delta = choice.get("delta")
        if delta is not None:
            delta = _mapping(delta, f"{where}.delta")
            for key in _REASONING_KEYS:
                thinking = _opt_str(delta, key, f"{where}.delta")
                if thinking:
                    self.thinking.append(thinking)
                    events.append(ThinkingDelta(thinking))
                    break
            text = _opt_str(delta, "content", f"{where}.delta")
            if text:
                self.text.append(text)
                events.append(TextDelta(text))
            calls = delta.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list):
                    raise ChunkError(f"{where}.delta.tool_calls should be a list, got {calls!r}")
                for n, call in enumerate(calls):
                    events.append(self._tool_call(call, n, f"{where}.delta.tool_calls[{n}]"))
        finish = _opt_str(choice, "finish_reason", where)
        if finish:
            self.finish_reason = finish
        return events

    def _tool_call(self, raw: Any, position: int, where: str) -> ToolCallDelta:
        call = _mapping(raw, where)
        key = call.get("index", position)
        if isinstance(key, bool) or not isinstance(key, int):
            raise ChunkError(f"{where}.index should be an integer, got {key!r}")
        call_id = _opt_str(call, "id", where)
        fn = call.get("function")
        fn = {} if fn is None else _mapping(fn, f"{where}.function")
        name = _opt_str(fn, "name", f"{where}.function")
        args = fn.get("arguments")
        if args is None:
            args = ""
        elif isinstance(args, Mapping):  # some servers send the arguments already parsed
            try:
                args = json.dumps(args)
            except (TypeError, ValueError, RecursionError) as exc:
                raise ChunkError(f"{where}.function.arguments cannot be encoded: {exc}") from None
        elif not isinstance(args, str):
            raise ChunkError(f"{where}.function.arguments should be a string, got {args!r}")
        args = replace_surrogates(args)
        pending = self.calls.get(key)
        if pending is None:
            pending = self.calls[key] = _PendingCall()
            self.order.append(key)
        new_id = call_id if call_id and pending.id is None else None
        new_name = name if name and pending.name is None else None
        pending.id = pending.id or new_id
        pending.name = pending.name or new_name
        if args:
            pending.arguments.append(args)
        return ToolCallDelta(self.order.index(key), id=new_id, name=new_name, arguments_delta=args)

    def message(self) -> AssistantMessage:
        """The complete message; :class:`ChunkError` if a tool call is unusable."""
        content: list[AssistantContent] = []
        if self.thinking:
            content.append(ThinkingContent("".join(self.thinking)))
        if self.text:
            content.append(TextContent("".join(self.text)))
        for n, key in enumerate(self.order):
            content.append(self._finish_call(n, self.calls[key]))
        reason = self.finish_reason
        return AssistantMessage(
            tuple(content),
            model=self.model,
            provider="openai",
            usage=self.usage,
            stop_reason=STOP_REASONS.get(reason, reason) if reason else None,
        )

    def _finish_call(self, n: int, call: _PendingCall) -> ToolCall:
        if not call.name:
            raise ChunkError(f"tool call {n} has no function name")
        raw = "".join(call.arguments).strip()
        try:
            value = json.loads(raw, parse_constant=_not_json) if raw else {}
        except RecursionError:
            raise ChunkError(
                f"tool call {n} ({call.name!r}) has invalid JSON arguments {raw[:200]!r}: "
                "nested too deeply"
            ) from None
        except ValueError as exc:
            raise ChunkError(
                f"tool call {n} ({call.name!r}) has invalid JSON arguments {raw[:200]!r}: {exc}"
            ) from None
        args = checked_arguments(value)
        if args is None:
            raise ChunkError(
                f"tool call {n} ({call.name!r}) arguments should be a JSON object (at most "
                f"{MAX_ARGUMENT_DEPTH} levels deep), got {raw[:200]!r}"
            )
        return ToolCall(call.id or f"call_{uuid.uuid4().hex[:24]}", call.name, args)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
