"""The run event log conformance suite.

Subclass it in a plugin's tests and provide a ``make_log`` fixture: a factory
``make_log(max_events=10_000, retention=300.0)`` returning a fresh
:class:`~spectra_core.event_log.EventLog` (or an awaitable of one) that reads time
from the ``clock`` fixture (a :class:`~spectra_core.testing.FakeClock`)::

    class TestMyEventLog(EventLogConformance):
        @pytest.fixture
        def make_log(self, clock):
            def make(max_events=10_000, retention=300.0):
                return MyEventLog(max_events, retention, clock=clock)
            return make

Run ids are random, so a shared server is fine. The same factory drives
:func:`~spectra_core.testing.run_event_log_model`, the reference-model property test.
Requires pytest-asyncio.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..errors import InvalidArgumentError
from ..event_log import EventLog, EventLogGap, LogEntry, RunLogNotFound
from ._event_log_helpers import (
    WAIT,
    MakeEventLog,
    build_log,
    drain,
    make_event,
    new_run_id,
    next_entry,
)
from ._event_log_sessions import EventLogSessionChecks
from .clock import FakeClock

__all__ = [
    "WAIT",
    "EventLogConformance",
    "MakeEventLog",
    "build_log",
    "drain",
    "make_event",
    "new_run_id",
    "next_entry",
]


class EventLogConformance(EventLogSessionChecks):
    """The behaviour every run event log must show. See the module docstring."""

    pytestmark = pytest.mark.asyncio

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    async def advance(self, log: EventLog, clock: FakeClock, seconds: float) -> None:
        """Let ``seconds`` pass for the log's retention (a backend whose expiry follows
        another clock overrides this)."""
        clock.advance(seconds)

    async def _log(self, make_log: MakeEventLog, **kwargs: Any) -> EventLog:
        return await build_log(make_log, **kwargs)

    async def _append(self, log: EventLog, run_id: str, seqs: range, **fields: Any) -> None:
        for seq in seqs:
            await log.append(make_event(run_id, seq, **fields))

    # --- appending ------------------------------------------------------------------

    async def test_append_returns_the_entry_with_its_id(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        event = make_event(run, 1, "agent_start", turn=None, delta={"type": "text", "t": "é"})
        entry = await log.append(event)
        assert (entry.id, entry.run_id, entry.seq, entry.type) == (
            f"{run}:1",
            run,
            1,
            "agent_start",
        )
        assert dict(entry.event) == event
        got = await next_entry(await log.subscribe(run))
        assert (got.id, got.type, dict(got.event)) == (f"{run}:1", "agent_start", event)
        assert LogEntry.from_json(run, 1, "agent_start", got.json).event == event

    async def test_seq_must_go_up_by_one(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        with pytest.raises(InvalidArgumentError, match="seq 2 does not follow seq 0"):
            await log.append(make_event(run, 2))
        await log.append(make_event(run, 1))
        for bad in (1, 3):
            with pytest.raises(InvalidArgumentError, match=f"seq {bad} does not follow seq 1"):
                await log.append(make_event(run, bad))
        await self._append(log, run, range(2, 3), type="run_end")
        assert await drain(await log.subscribe(run)) == [1, 2]

    async def test_nothing_follows_run_end(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await log.append(make_event(run, 1, "run_end", status="completed"))
        with pytest.raises(InvalidArgumentError, match="has ended"):
            await log.append(make_event(run, 2))
        assert await drain(await log.subscribe(run)) == [1]

    @pytest.mark.parametrize(
        ("event", "what"),
        [
            ("not a mapping", "must be a mapping"),
            ({"seq": 1, "type": "x"}, "run_id"),
            ({"run_id": "../etc", "seq": 1, "type": "x"}, "run_id"),
            ({"run_id": "r", "seq": 0, "type": "x"}, "'seq'"),
            ({"run_id": "r", "seq": True, "type": "x"}, "'seq'"),
            ({"run_id": "r", "seq": "1", "type": "x"}, "'seq'"),
            ({"run_id": "r", "seq": 1}, "'type'"),
            ({"run_id": "r", "seq": 1, "type": ""}, "'type'"),
            ({"run_id": "r", "seq": 1, "type": "x", "bad": object()}, "not JSON-compatible"),
        ],
    )
    async def test_bad_events_are_refused_and_not_logged(
        self, make_log: MakeEventLog, event: Any, what: str
    ) -> None:
        log = await self._log(make_log)
        if isinstance(event, dict) and event.get("run_id") == "r":
            event = {**event, "run_id": new_run_id()}
        with pytest.raises(InvalidArgumentError, match=what):
            await log.append(event)
        if isinstance(event, dict) and event.get("run_id", "").startswith("run-"):
            with pytest.raises(RunLogNotFound):
                await log.subscribe(event["run_id"])

    # --- reading --------------------------------------------------------------------

    async def test_a_reader_gets_kept_then_live_events_until_run_end(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await self._append(log, run, range(1, 4))
        it = await log.subscribe(run)
        assert [(await next_entry(it)).seq for _ in range(3)] == [1, 2, 3]
        pending = asyncio.ensure_future(next_entry(it))
        await asyncio.sleep(0)
        assert not pending.done()
        await log.append(make_event(run, 4))
        assert (await pending).seq == 4
        await log.append(make_event(run, 5, "run_end", status="completed"))
        assert await drain(it) == [5]

    async def test_resume_after_an_id_gets_exactly_the_missed_events(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await self._append(log, run, range(1, 8))
        it = await log.subscribe(run, after=f"{run}:4")
        assert [(await next_entry(it)).seq for _ in range(3)] == [5, 6, 7]
        await log.append(make_event(run, 8, "run_end"))
        assert await drain(it) == [8]
        assert await drain(await log.subscribe(run, after=f"{run}:8")) == []
        assert await drain(await log.subscribe(run, after=f"{run}:0")) == list(range(1, 9))

    async def test_any_number_of_readers_get_every_event_once_in_order(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await log.open(run)
        readers = [asyncio.ensure_future(drain(await log.subscribe(run))) for _ in range(5)]
        await self._append(log, run, range(1, 50))
        late = asyncio.ensure_future(drain(await log.subscribe(run, after=f"{run}:20")))
        await self._append(log, run, range(50, 51), type="run_end")
        for reader in readers:
            assert await reader == list(range(1, 51))
        assert await late == list(range(21, 51))

    async def test_a_reader_cancelled_while_waiting_does_not_disturb_the_others(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await self._append(log, run, range(1, 3))
        readers = [asyncio.ensure_future(drain(await log.subscribe(run))) for _ in range(3)]
        for _ in range(20):  # let every reader catch up and wait for the next event
            await asyncio.sleep(0)
        readers[1].cancel()  # a client disconnecting
        await asyncio.gather(readers[1], return_exceptions=True)
        await self._append(log, run, range(3, 5))
        await self._append(log, run, range(5, 6), type="run_end")
        assert await readers[0] == [1, 2, 3, 4, 5]
        assert await readers[2] == [1, 2, 3, 4, 5]

    async def test_a_reader_may_subscribe_before_the_first_event(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        with pytest.raises(RunLogNotFound, match=run):
            await log.subscribe(run)
        await log.open(run)
        await log.open(run)  # idempotent
        reader = asyncio.ensure_future(drain(await log.subscribe(run)))
        await self._append(log, run, range(1, 3))
        await self._append(log, run, range(3, 4), type="run_end")
        assert await reader == [1, 2, 3]

    async def test_runs_are_independent(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        a, b = new_run_id(), new_run_id()
        await self._append(log, a, range(1, 4))
        await self._append(log, b, range(1, 3))
        await self._append(log, a, range(4, 5), type="run_end")
        await self._append(log, b, range(3, 4), type="run_end")
        assert await drain(await log.subscribe(a)) == [1, 2, 3, 4]
        assert [e.run_id for e in [await next_entry(await log.subscribe(b))]] == [b]

    @pytest.mark.parametrize(
        "after", ["nonsense", "{run}", "{run}:", "{run}:-1", "{run}:x", "other-run:1", "{run}:9"]
    )
    async def test_bad_resume_ids_are_refused(self, make_log: MakeEventLog, after: str) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await self._append(log, run, range(1, 4))
        with pytest.raises(InvalidArgumentError):
            await log.subscribe(run, after=after.format(run=run))

    async def test_bad_run_ids_are_refused(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        for bad in ("", "../x", "a b", "a:1"):
            with pytest.raises(InvalidArgumentError):
                await log.subscribe(bad)
            with pytest.raises(InvalidArgumentError):
                await log.open(bad)

    # --- bounds ---------------------------------------------------------------------

    async def test_a_run_keeps_its_last_max_events(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log, max_events=5)
        run = new_run_id()
        await self._append(log, run, range(1, 13))
        await self._append(log, run, range(13, 14), type="run_end")
        assert await drain(await log.subscribe(run)) == list(range(9, 14))
        assert await drain(await log.subscribe(run, after=f"{run}:8")) == list(range(9, 14))
        with pytest.raises(EventLogGap, match="no longer in the log") as info:
            await log.subscribe(run, after=f"{run}:7")
        assert (info.value.after_seq, info.value.first_seq) == (7, 9)

    async def test_a_slow_reader_never_holds_the_writer_or_other_readers(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log, max_events=100)
        run = new_run_id()
        await log.open(run)
        slow = await log.subscribe(run)
        fast = asyncio.ensure_future(drain(await log.subscribe(run)))
        for seq in range(1, 1001):  # the writer yields as a run does; the slow reader never reads
            await log.append(make_event(run, seq, "run_end" if seq == 1000 else "x"))
            await asyncio.sleep(0)
        assert await fast == list(range(1, 1001))
        # the slow reader lost the events dropped meanwhile, and is told so
        with pytest.raises(EventLogGap):
            await next_entry(slow)

    async def test_an_ended_run_is_forgotten_after_its_retention(
        self, make_log: MakeEventLog, clock: FakeClock
    ) -> None:
        log = await self._log(make_log, retention=60.0)
        ended, live = new_run_id(), new_run_id()
        await self._append(log, live, range(1, 3))
        await self._append(log, ended, range(1, 3))
        await self._append(log, ended, range(3, 4), type="run_end")
        await self.advance(log, clock, 59.0)
        assert await drain(await log.subscribe(ended, after=f"{ended}:1")) == [2, 3]
        await self.advance(log, clock, 1.5)
        with pytest.raises(RunLogNotFound):
            await log.subscribe(ended)
        await self.advance(log, clock, 3600.0)
        live_reader = await log.subscribe(live)  # a run that has not ended is kept
        assert [(await next_entry(live_reader)).seq for _ in range(2)] == [1, 2]

    # --- upkeep ---------------------------------------------------------------------

    async def test_ping(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        await log.ping()

    async def test_aclose_ends_waiting_readers(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        run = new_run_id()
        await self._append(log, run, range(1, 3))
        reader = asyncio.ensure_future(drain(await log.subscribe(run)))
        await asyncio.sleep(0)
        await log.aclose()
        assert await reader == [1, 2]
