"""The assistant message being streamed, shared by all the events of one stream.

A stream of N deltas used to give each ``message_update`` a fresh copy of the message so
far: N copies of a growing message, quadratic memory. Instead one append-only
:class:`MessageBuilder` keeps the deltas as they arrive, and each event holds a
:class:`PartialMessage`: the builder and how many deltas it had then (two words). The
message itself is built from the builder when someone reads ``event.message``, each
time it is read; nothing is copied per delta, so a run's memory is linear in its output.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, TypeAlias

import attrs

from ..agent._clean import parse_arguments
from ..agent.provider import TextDelta, ThinkingDelta, ToolCallDelta
from ..models import AssistantContent, AssistantMessage, TextContent, ThinkingContent, ToolCall

__all__ = ["PARTIAL_ARGUMENTS_KEY", "MessageBuilder", "PartialMessage", "StreamDelta"]

StreamDelta: TypeAlias = TextDelta | ThinkingDelta | ToolCallDelta

#: The arguments of a tool call whose JSON is not complete (or not an object) yet are
#: shown as ``{PARTIAL_ARGUMENTS_KEY: "<the JSON text so far>"}``.
PARTIAL_ARGUMENTS_KEY = "_partial_arguments"


class MessageBuilder:
    """Append-only record of the deltas of one streamed assistant message.

    ``fields`` are the message's other attributes (``model``, ``provider``...). Deltas
    are only ever appended, so a :class:`PartialMessage` taken earlier keeps meaning
    the same message.
    """

    __slots__ = ("_calls", "_deltas", "fields")

    def __init__(self, **fields: Any) -> None:
        self._deltas: list[StreamDelta] = []
        self._calls: dict[int, tuple[str | None, str | None]] = {}
        self.fields = fields

    def __len__(self) -> int:
        return len(self._deltas)

    @property
    def empty(self) -> bool:
        return not self._deltas

    def add(self, delta: StreamDelta) -> PartialMessage:
        """Record ``delta``; the message up to and including it."""
        self._deltas.append(delta)
        if isinstance(delta, ToolCallDelta):
            call_id, name = self._calls.get(delta.index, (None, None))
            self._calls[delta.index] = (delta.id or call_id, delta.name or name)
        return PartialMessage(self, len(self._deltas))

    def call_identity(self, index: int) -> tuple[str | None, str | None]:
        """The id and name tool call ``index`` has so far."""
        return self._calls.get(index, (None, None))

    def view(self) -> PartialMessage:
        """The message as it stands now."""
        return PartialMessage(self, len(self._deltas))

    def build(self, count: int | None = None, **fields: Any) -> AssistantMessage:
        """The message made of the first ``count`` deltas (all by default); ``fields``
        override the builder's."""
        text: list[str] = []
        thinking: list[str] = []
        calls: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]
        deltas = self._deltas if count is None else islice(self._deltas, count)
        for delta in deltas:
            if isinstance(delta, TextDelta):
                text.append(delta.text)
            elif isinstance(delta, ThinkingDelta):
                thinking.append(delta.thinking)
            else:
                call = calls.setdefault(delta.index, [None, None, []])
                call[0] = delta.id or call[0]
                call[1] = delta.name or call[1]
                call[2].append(delta.arguments_delta)
        blocks: list[AssistantContent] = []
        if thinking:
            blocks.append(ThinkingContent("".join(thinking)))
        if text:
            blocks.append(TextContent("".join(text)))
        for call_id, name, pieces in calls.values():
            raw = "".join(pieces)
            arguments = parse_arguments(raw)
            if arguments is None:
                arguments = {PARTIAL_ARGUMENTS_KEY: raw}
            blocks.append(ToolCall(call_id or "", name or "", arguments))
        return AssistantMessage(tuple(blocks), **{**self.fields, **fields})


@attrs.frozen(repr=False)
class PartialMessage:
    """The streamed message as it was after its first ``count`` deltas: a view of a
    shared :class:`MessageBuilder`, built into an :class:`AssistantMessage` on demand."""

    builder: MessageBuilder  # compared by identity
    count: int

    def message(self) -> AssistantMessage:
        """The message so far (built on each call, in time linear in its deltas)."""
        return self.builder.build(self.count)

    def __repr__(self) -> str:
        return f"PartialMessage(deltas={self.count})"
