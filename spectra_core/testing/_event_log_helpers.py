"""Helpers of the event log conformance suite: ids, events, reading with a time limit."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..event_log import EventLog, LogEntry

__all__ = ["WAIT", "MakeEventLog", "build_log", "drain", "make_event", "new_run_id", "next_entry"]

#: ``make_log(max_events=10_000, retention=300.0) -> EventLog | Awaitable[EventLog]``
MakeEventLog = Callable[..., Any]

#: How long (wall-clock seconds) a test waits for an event that must come; a safety net
#: against a hang, never a measurement.
WAIT = 10.0


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def make_event(
    run_id: str, seq: int, type: str = "message_update", **fields: Any
) -> dict[str, Any]:
    """An event mapping as ``RunEvent.to_dict()`` makes it."""
    return {
        "type": type,
        "session_id": "s-1",
        "run_id": run_id,
        "seq": seq,
        "timestamp": 1_767_225_600.0 + seq,
        **fields,
    }


async def build_log(make_log: MakeEventLog, **kwargs: Any) -> EventLog:
    log = make_log(**kwargs)
    if inspect.isawaitable(log):
        log = await log
    assert isinstance(log, EventLog), f"make_log returned {log!r}, not an EventLog"
    return log


async def next_entry(it: AsyncIterator[LogEntry]) -> LogEntry:
    return await asyncio.wait_for(anext(it), WAIT)


async def drain(it: AsyncIterator[LogEntry]) -> list[int]:
    """The seqs of every entry until the iterator ends."""

    async def run() -> list[int]:
        return [e.seq async for e in it]

    return await asyncio.wait_for(run(), WAIT)
