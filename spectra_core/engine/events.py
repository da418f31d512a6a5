"""Run events: what a run emits, in order, to whoever streams it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import attrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..models import AssistantMessage, Message, ToolResultMessage
from ..serde import converter
from ._partial import PartialMessage

__all__ = ["EventType", "RunEvent", "RunStatus"]


class RunStatus(StrEnum):
    """How a run ended; carried by its one terminal ``run_end`` event."""

    COMPLETED = "completed"
    ABORTED = "aborted"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"


class EventType(StrEnum):
    """The event vocabulary (that of the agent loop) plus the terminal ``run_end``."""

    AGENT_START = "agent_start"
    TURN_START = "turn_start"
    MESSAGE_START = "message_start"
    MESSAGE_UPDATE = "message_update"
    MESSAGE_END = "message_end"
    TOOL_EXECUTION_START = "tool_execution_start"
    TOOL_EXECUTION_UPDATE = "tool_execution_update"
    TOOL_EXECUTION_END = "tool_execution_end"
    TURN_END = "turn_end"
    AGENT_END = "agent_end"
    RUN_END = "run_end"


@attrs.frozen(kw_only=True)
class RunEvent:
    """One event of a run. ``seq`` increases by one per event within the run, so a
    client can resume a stream after the last event it saw.

    ``message`` is the message concerned (for ``message_start`` and ``message_update``,
    the assistant message so far); ``delta`` the new piece
    (``{"type": "text"|"thinking"|"tool_call", ...}``); tool events carry
    ``tool_call_id``, ``tool_name``, ``arguments``, ``result`` and ``is_error``;
    ``run_end`` carries ``status``, ``error`` and ``retry_after``.

    While a message streams, its events do not each hold a copy of the message so far:
    they share one append-only builder, and ``message`` builds the message (a new
    :class:`~spectra_core.AssistantMessage`) when it is read, from the deltas up to this
    event. Reading it costs time linear in the message; keeping events costs memory
    linear in the output. ``partial`` is that shared view (``None`` for a complete
    message); ``delta`` is the cheap way to follow a stream.
    """

    type: EventType
    session_id: str
    run_id: str
    seq: int
    timestamp: float
    turn: int | None = None
    _message: Message | PartialMessage | None = attrs.field(default=None, alias="message")
    delta: dict[str, Any] | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments: dict[str, Any] | None = None
    result: ToolResultMessage | None = None
    is_error: bool | None = None
    status: RunStatus | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def terminal(self) -> bool:
        return self.type is EventType.RUN_END

    @property
    def message(self) -> Message | None:
        """The message concerned; for a streaming message, built now from the deltas up
        to this event (a new object on each read)."""
        message = self._message
        return message.message() if isinstance(message, PartialMessage) else message

    @property
    def partial(self) -> PartialMessage | None:
        """The shared view of a message still streaming (``message_start`` and
        ``message_update``), else ``None``."""
        message = self._message
        return message if isinstance(message, PartialMessage) else None

    @property
    def assistant_message(self) -> AssistantMessage | None:
        message = self.message
        return message if isinstance(message, AssistantMessage) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, without empty fields (what transports send)."""
        raw: dict[str, Any] = converter.unstructure(self)
        return {k: v for k, v in raw.items() if v is not None}


# The converter sees ``message`` (built when it is a partial view) under its public name,
# both ways, so events round-trip through an event log as they did with a plain field.
_unstructure_fields = make_dict_unstructure_fn(RunEvent, converter, _message=override(omit=True))
_structure_fields = make_dict_structure_fn(RunEvent, converter, _message=override(omit=True))


def _unstructure_event(event: RunEvent) -> dict[str, Any]:
    raw = _unstructure_fields(event)
    message = event.message
    out: dict[str, Any] = {}
    for field in attrs.fields(RunEvent):
        if field.name == "_message":
            out["message"] = None if message is None else converter.unstructure(message)
        else:
            out[field.name] = raw[field.name]
    return out


def _structure_event(data: Any, cls: type[RunEvent]) -> RunEvent:
    event = _structure_fields({k: v for k, v in data.items() if k != "message"}, cls)
    message = data.get("message")
    if message is None:
        return event
    return attrs.evolve(event, message=converter.structure(message, Message))  # type: ignore[arg-type]


converter.register_unstructure_hook(RunEvent, _unstructure_event)
converter.register_structure_hook(RunEvent, _structure_event)
