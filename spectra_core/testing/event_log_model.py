"""A hypothesis state machine checking an event log against a small reference model.

Random appends, run ends, opens, subscriptions (from the start or after any id, valid
or not), reads and clock advances; every answer of the log must match the model: a
reader gets exactly the events after its cursor, once, in order, then ``run_end`` ends
it; a dropped event means :class:`~spectra_core.event_log.EventLogGap`; an expired run
:class:`~spectra_core.event_log.RunLogNotFound`. Use it from a synchronous test::

    def test_matches_the_model(make_log, clock):
        run_event_log_model(make_log, clock)

Requires hypothesis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ..errors import InvalidArgumentError
from ..event_log import EventLog, EventLogGap, LogEntry, RunLogNotFound
from ._event_log_helpers import MakeEventLog, build_log, make_event, next_entry
from .clock import FakeClock

__all__ = ["run_event_log_model"]

T = TypeVar("T")
MAX_EVENTS = 4
RETENTION = 10.0
RUNS = 3


@attrs.define(eq=False)
class _ModelRun:
    run_id: str
    last: int = 0
    ended_at: float | None = None

    def first(self) -> int:
        return max(1, self.last - MAX_EVENTS + 1)


@attrs.define(eq=False)
class _Reader:
    run: _ModelRun
    it: AsyncIterator[LogEntry]
    cursor: int
    done: bool = False


def _machine(make_log: MakeEventLog, clock: FakeClock) -> type[RuleBasedStateMachine]:
    class EventLogModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.prefix = uuid.uuid4().hex[:8]
            self.generation = [0] * RUNS
            self.runs: dict[int, _ModelRun] = {}
            self.readers: list[_Reader] = []
            self.log: EventLog | None = None

        def run(self, coro: Coroutine[Any, Any, T]) -> T:
            return self.loop.run_until_complete(coro)

        @initialize()
        def make(self) -> None:
            self.log = self.run(build_log(make_log, max_events=MAX_EVENTS, retention=RETENTION))

        def teardown(self) -> None:
            if self.log is not None:
                self.run(self.log.aclose())
            self.loop.close()

        # --- the model -------------------------------------------------------------

        def _expire(self) -> None:
            now = clock.monotonic()
            for i, run in list(self.runs.items()):
                if run.ended_at is not None and run.ended_at + RETENTION <= now:
                    del self.runs[i]
                    self.readers = [r for r in self.readers if r.run is not run]

        def _run(self, i: int) -> _ModelRun:
            self._expire()
            if i not in self.runs:
                self.generation[i] += 1
                self.runs[i] = _ModelRun(f"r{self.prefix}-{i}-{self.generation[i]}")
            return self.runs[i]

        # --- rules ------------------------------------------------------------------

        @rule(i=st.integers(0, RUNS - 1), n=st.integers(1, 6), end=st.booleans())
        def append(self, i: int, n: int, end: bool) -> None:
            assert self.log is not None
            run = self._run(i)
            for k in range(n):
                last = end and k == n - 1
                event = make_event(run.run_id, run.last + 1, "run_end" if last else "x")
                if run.ended_at is not None:
                    try:
                        self.run(self.log.append(event))
                    except InvalidArgumentError:
                        return
                    raise AssertionError(f"{run.run_id}: append after run_end was accepted")
                entry = self.run(self.log.append(event))
                assert entry.id == f"{run.run_id}:{run.last + 1}"
                run.last += 1
                if last:
                    run.ended_at = clock.monotonic()

        @rule(i=st.integers(0, RUNS - 1))
        def open(self, i: int) -> None:
            assert self.log is not None
            self.run(self.log.open(self._run(i).run_id))

        @rule(i=st.integers(0, RUNS - 1), after=st.none() | st.integers(0, 30))
        def subscribe(self, i: int, after: int | None) -> None:
            assert self.log is not None
            self._expire()
            run = self.runs.get(i)
            run_id = run.run_id if run is not None else f"r{self.prefix}-{i}-unknown"
            after_id = None if after is None else f"{run_id}:{after}"
            try:
                it = self.run(self.log.subscribe(run_id, after_id))
            except RunLogNotFound:
                assert run is None, f"{run_id} exists in the model"
                return
            except EventLogGap:
                assert run is not None and after is not None and after + 1 < run.first()
                return
            except InvalidArgumentError:
                assert run is not None and after is not None and after > run.last
                return
            assert run is not None, f"subscribed to {run_id}, which the model does not have"
            cursor = run.first() - 1 if after is None else after
            assert after is None or run.first() <= after + 1 <= run.last + 1
            self.readers.append(_Reader(run, it, cursor))

        @precondition(lambda self: bool(self.readers))
        @rule(pick=st.integers(0, 100), n=st.integers(1, 8))
        def read(self, pick: int, n: int) -> None:
            self._expire()
            if not self.readers:
                return
            reader = self.readers[pick % len(self.readers)]
            for _ in range(n):
                run = reader.run
                if reader.cursor >= run.last:
                    if run.ended_at is not None:  # delivered run_end, or subscribed after it
                        try:
                            self.run(next_entry(reader.it))
                        except StopAsyncIteration:
                            self.readers.remove(reader)
                            return
                        raise AssertionError("a reader went past run_end")
                    return  # nothing to read yet: the read would wait
                if reader.cursor + 1 < run.first():
                    try:
                        self.run(next_entry(reader.it))
                    except EventLogGap:
                        self.readers.remove(reader)
                        return
                    raise AssertionError("a reader got an event the log no longer keeps")
                entry = self.run(next_entry(reader.it))
                reader.cursor += 1
                assert (entry.run_id, entry.seq) == (run.run_id, reader.cursor)

        @rule(seconds=st.sampled_from([0.5, 5.0, 9.99, 10.0, 30.0]))
        def advance(self, seconds: float) -> None:
            clock.advance(seconds)

        @invariant()
        def readers_are_consistent(self) -> None:
            for r in self.readers:
                assert r.cursor <= r.run.last

    return EventLogModel


def run_event_log_model(
    make_log: MakeEventLog, clock: FakeClock, *, max_examples: int = 60, steps: int = 40
) -> None:
    """Check ``make_log``'s logs against the reference model (see the module docstring).

    Call it from a synchronous test: each example runs on its own event loop.
    """
    machine = _machine(make_log, clock)
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=max_examples, stateful_step_count=steps, deadline=None),
    )
