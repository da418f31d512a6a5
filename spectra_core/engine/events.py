"""Run events: what a run emits, in order, to whoever streams it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import attrs

from ..models import AssistantMessage, Message, ToolResultMessage
from ..serde import converter

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

    ``message`` is the message concerned (for ``message_update``, the assistant message
    so far); ``delta`` the new piece (``{"type": "text"|"thinking"|"tool_call", ...}``);
    tool events carry ``tool_call_id``, ``tool_name``, ``arguments``, ``result`` and
    ``is_error``; ``run_end`` carries ``status``, ``error`` and ``retry_after``.
    """

    type: EventType
    session_id: str
    run_id: str
    seq: int
    timestamp: float
    turn: int | None = None
    message: Message | None = None
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
    def assistant_message(self) -> AssistantMessage | None:
        return self.message if isinstance(self.message, AssistantMessage) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, without empty fields (what transports send)."""
        raw: dict[str, Any] = converter.unstructure(self)
        return {k: v for k, v in raw.items() if v is not None}
