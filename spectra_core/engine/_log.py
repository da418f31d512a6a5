"""A run's events in the event log: written in order by one task per run, and read back
as :class:`RunEvent` objects.

In the log a ``message_update`` carries its ``delta`` only, not the message so far (which
would make a streamed reply's log quadratic in its length); :class:`EventReplay` gives a
reader its ``message`` back from the deltas since ``message_start``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from ..agent.provider import TextDelta, ThinkingDelta, ToolCallDelta
from ..event_log import EventLog, LogEntry
from ..models import AssistantMessage
from ..serde import converter
from ._partial import MessageBuilder, StreamDelta
from .events import EventType, RunEvent

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["EventReplay", "LogWriter", "log_form", "replay"]

log = structlog.get_logger("spectra.engine")


def log_form(event: RunEvent) -> dict[str, Any]:
    """What the log keeps of an event: ``to_dict()``, without the message so far of a
    ``message_update`` (its ``delta`` says what is new)."""
    if event.type is EventType.MESSAGE_UPDATE:
        event = attrs.evolve(event, message=None)
    return event.to_dict()


def _delta(data: Mapping[str, Any]) -> StreamDelta | None:
    kind = data.get("type")
    if kind == "text":
        return TextDelta(data.get("text", ""))
    if kind == "thinking":
        return ThinkingDelta(data.get("thinking", ""))
    if kind == "tool_call":
        return ToolCallDelta(
            data.get("index", 0), data.get("id"), data.get("name"), data.get("arguments_delta", "")
        )
    return None


@attrs.define
class EventReplay:
    """Turns a run's logged events, read in order, back into :class:`RunEvent` objects."""

    _builder: MessageBuilder | None = None

    def event(self, data: Mapping[str, Any]) -> RunEvent:
        event = converter.structure(data, RunEvent)
        if event.type is EventType.MESSAGE_START:
            message = event.message
            self._builder = (
                MessageBuilder(model=message.model, provider=message.provider)
                if isinstance(message, AssistantMessage) and not message.content
                else None
            )
        elif event.type is EventType.MESSAGE_UPDATE and self._builder is not None:
            delta = _delta(event.delta or {})
            if delta is not None:
                event = attrs.evolve(event, message=self._builder.add(delta))
        else:
            self._builder = None
        return event


async def replay(entries: AsyncIterator[LogEntry]) -> AsyncIterator[RunEvent]:
    """The run events of a subscription from the start of a run."""
    events = EventReplay()
    async for entry in entries:
        yield events.event(entry.event)


@attrs.frozen
class LogWriter:
    """Appends each event a run emits to the log, in order, as the only reader of the
    run's queue. A failing log never stops the run: the failure is logged once and the
    run's remaining events are dropped (its readers see the log's own error)."""

    event_log: EventLog
    append_timeout: float = 10.0

    async def open(self, run: Run) -> bool:
        try:
            async with asyncio.timeout(self.append_timeout):
                await self.event_log.open(run.run_id, run.session.id)
        except Exception as exc:
            log.warning("run not logged: the event log refused it", error=_describe(exc))
            return False
        return True

    async def write(self, run: Run) -> None:
        failed = False
        while True:
            event = await run.queue.get()
            if not failed:
                try:
                    async with asyncio.timeout(self.append_timeout):
                        await self.event_log.append(log_form(event))
                except Exception as exc:
                    failed = True
                    log.warning("run events no longer logged", error=_describe(exc))
            if event.terminal:
                return


def _describe(exc: BaseException) -> str:
    from ._run import describe

    return describe(exc)
