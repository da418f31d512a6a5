"""The ``memory`` event log: runs' events in process memory, for one process."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs

from spectra_core.clock import Clock, SystemClock
from spectra_core.durations import Duration
from spectra_core.errors import InvalidArgumentError
from spectra_core.event_log import (
    TERMINAL_EVENT_TYPE,
    EventLogGap,
    EventLogOptions,
    LogEntry,
    RunLogNotFound,
    parse_event_id,
)
from spectra_core.ids import validate_id

__all__ = ["MemoryEventLog", "MemoryEventLogOptions"]


@attrs.frozen
class MemoryEventLogOptions(EventLogOptions):
    """Options of the ``memory`` event log (those of every event log)."""


class _Run:
    """One run's kept events: ``entries[i]`` has seq ``base + i``; the logical start is
    ``last_seq - max_events + 1`` (the list is compacted now and then, not per append)."""

    __slots__ = ("base", "ended", "entries", "last_seq", "session_id", "waiter")

    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id
        self.entries: list[LogEntry] = []
        self.base = 1
        self.last_seq = 0
        self.ended = False
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(None)
            self.waiter = None

    def changed(self) -> asyncio.Future[None]:
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter


class _SessionRuns:
    """The runs opened on one session, oldest first, each with ``n``, its place among
    every run the log opened (the last ``SESSION_RUNS`` kept)."""

    __slots__ = ("readers", "runs", "waiter")

    def __init__(self) -> None:
        self.runs: list[tuple[int, str]] = []
        self.readers = 0
        self.waiter: asyncio.Future[None] | None = None

    def add(self, n: int, run_id: str) -> None:
        if any(r == run_id for _, r in self.runs):
            return
        self.runs.append((n, run_id))
        if len(self.runs) > SESSION_RUNS:
            del self.runs[0]
        self.wake()

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def changed(self) -> asyncio.Future[None]:
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter


#: Runs of a session the log remembers (older ones are forgotten first).
SESSION_RUNS = 100


class MemoryEventLog:
    """An :class:`~spectra_core.event_log.EventLog` in process memory.

    ``clock`` decides when an ended run's ``retention`` has passed (expired runs are
    dropped lazily, on the next call).
    """

    def __init__(
        self,
        max_events: int = 10_000,
        retention: float = 300.0,
        *,
        clock: Clock | None = None,
    ) -> None:
        MemoryEventLogOptions(max_events, Duration(retention))  # validates both
        self.max_events = max_events
        self.retention = float(retention)
        self.clock: Clock = clock or SystemClock()
        self._runs: dict[str, _Run] = {}
        self._sessions: dict[str, _SessionRuns] = {}
        self._opened = 0  # runs opened with a session, ever
        self._expiry: OrderedDict[str, float] = OrderedDict()  # ended runs, in end order
        self._closed = False

    @classmethod
    def from_options(cls, options: MemoryEventLogOptions) -> MemoryEventLog:
        return cls(options.max_events, options.retention)

    # --- writing ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this memory event log is closed")
        if self._expiry:
            self._sweep()

    async def open(self, run_id: str, session_id: str | None = None) -> None:
        self._check_open()
        validate_id(run_id, "run id")
        if session_id is not None:
            validate_id(session_id, "session id")
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run(session_id)
        if session_id is None or run.session_id not in (None, session_id):
            return
        run.session_id = session_id
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _SessionRuns()
        self._opened += 1
        session.add(self._opened, run_id)

    async def append(self, event: Mapping[str, Any]) -> LogEntry:
        entry = LogEntry.of(event)
        self._check_open()
        run = self._runs.get(entry.run_id)
        if run is None:
            run = self._runs[entry.run_id] = _Run()
        if run.ended:
            raise InvalidArgumentError(
                f"run {entry.run_id!r} has ended (run_end logged); event seq {entry.seq} refused"
            )
        if entry.seq != run.last_seq + 1:
            raise InvalidArgumentError(
                f"run {entry.run_id!r}: event seq {entry.seq} does not follow seq "
                f"{run.last_seq} (seq goes up by one per event)"
            )
        run.entries.append(entry)
        run.last_seq = entry.seq
        if len(run.entries) >= 2 * self.max_events:
            drop = len(run.entries) - self.max_events
            del run.entries[:drop]
            run.base += drop
        if entry.type == TERMINAL_EVENT_TYPE:
            run.ended = True
            self._expiry[entry.run_id] = self.clock.monotonic() + self.retention
        if run.waiter is not None:
            run.wake()
        return entry

    # --- reading ----------------------------------------------------------------------

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[LogEntry]:
        self._check_open()
        validate_id(run_id, "run id")
        run = self._runs.get(run_id)
        if run is None:
            raise RunLogNotFound(run_id)
        cursor = self._first_seq(run) - 1
        if after is not None:
            after_run, cursor = parse_event_id(after)
            if after_run != run_id:
                raise InvalidArgumentError(
                    f"event id {after!r} belongs to run {after_run!r}, not {run_id!r}"
                )
            if cursor > run.last_seq:
                raise InvalidArgumentError(
                    f"event id {after!r} is ahead of the log of run {run_id!r} "
                    f"(its last event is seq {run.last_seq})"
                )
            self._check_kept(run_id, run, cursor)
        return self._follow(run_id, run, cursor)

    async def session_runs(
        self, session_id: str, after_run: str | None = None
    ) -> AsyncIterator[str]:
        self._check_open()
        validate_id(session_id, "session id")
        session = self._sessions.get(session_id)
        runs = session.runs if session is not None else []
        cursor = self._opened
        if after_run is not None:
            validate_id(after_run, "run id")
            found = [n for n, r in runs if r == after_run]
            if not found:
                raise RunLogNotFound(after_run)
            cursor = found[0]
        elif runs:
            n, latest = runs[-1]
            run = self._runs.get(latest)
            if run is not None and not run.ended:
                cursor = n - 1
        return self._follow_session(session_id, cursor)

    async def _follow_session(self, session_id: str, cursor: int) -> AsyncIterator[str]:
        while not self._closed:
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = _SessionRuns()
            later = [(n, r) for n, r in session.runs if n > cursor]
            if later:
                cursor, run_id = later[0]
                yield run_id
                continue
            session.readers += 1  # counted while waiting: the entry stays meanwhile
            try:
                await asyncio.shield(session.changed())
            finally:
                session.readers -= 1
                if not session.readers and not session.runs:
                    self._sessions.pop(session_id, None)

    def _first_seq(self, run: _Run) -> int:
        return max(run.base, run.last_seq - self.max_events + 1)

    def _check_kept(self, run_id: str, run: _Run, cursor: int) -> None:
        first = self._first_seq(run)
        if cursor + 1 < first:
            raise EventLogGap(run_id, cursor, first)

    async def _follow(self, run_id: str, run: _Run, cursor: int) -> AsyncIterator[LogEntry]:
        max_events = self.max_events
        while True:
            last = run.last_seq
            if cursor < last:
                cursor += 1  # _check_kept, inlined (once per event and reader)
                if cursor <= last - max_events or cursor < run.base:
                    raise EventLogGap(run_id, cursor - 1, self._first_seq(run))
                entry = run.entries[cursor - run.base]
                yield entry
                if entry.type == TERMINAL_EVENT_TYPE:
                    return
                continue
            if run.ended or self._closed:
                return
            # shared by every reader of the run: one reader's cancellation (a client
            # leaving) must not cancel it for the others
            await asyncio.shield(run.changed())

    # --- upkeep -----------------------------------------------------------------------

    def _sweep(self) -> None:
        now = self.clock.monotonic()
        while self._expiry:
            run_id, deadline = next(iter(self._expiry.items()))
            if deadline > now:
                break
            del self._expiry[run_id]
            run = self._runs.pop(run_id, None)
            if run is not None and run.session_id is not None:
                self._leave_session(run.session_id, run_id)

    def _leave_session(self, session_id: str, run_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.runs = [(n, r) for n, r in session.runs if r != run_id]
            if not session.runs and not session.readers:
                del self._sessions[session_id]

    @property
    def run_count(self) -> int:
        """Runs kept now (ended runs past their retention included until the next call)."""
        return len(self._runs)

    async def ping(self) -> None:
        if self._closed:
            raise RuntimeError("memory event log is closed")

    async def aclose(self) -> None:
        self._closed = True
        for run in self._runs.values():
            run.wake()
        for session in self._sessions.values():
            session.wake()
