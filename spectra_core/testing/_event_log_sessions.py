"""The session part of the event log conformance suite: runs followed by session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ..errors import InvalidArgumentError
from ..event_log import EventLog, LogEntry, RunLogNotFound, follow_session
from ._event_log_helpers import WAIT, MakeEventLog, make_event, new_run_id
from .clock import FakeClock

__all__ = ["EventLogSessionChecks"]


async def take(it: AsyncIterator[LogEntry], n: int) -> list[str]:
    """The ids of the next ``n`` entries (the stream of a session never ends)."""

    async def run() -> list[str]:
        return [(await anext(it)).id for _ in range(n)]

    return await asyncio.wait_for(run(), WAIT)


class EventLogSessionChecks:
    """Runs opened with a session id, read one after another by session."""

    if False:  # provided by EventLogConformance  # pragma: no cover

        async def _log(self, make_log: MakeEventLog, **kwargs: Any) -> EventLog: ...
        async def advance(self, log: EventLog, clock: FakeClock, seconds: float) -> None: ...

    async def _run(
        self, log: EventLog, session_id: str, run_id: str, seqs: range, end: bool = False
    ) -> None:
        await log.open(run_id, session_id)
        for seq in seqs:
            last = end and seq == seqs[-1]
            await log.append(
                make_event(run_id, seq, "run_end" if last else "x", session_id=session_id)
            )

    async def test_session_runs_come_in_open_order_then_live(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        session, other = new_run_id(), new_run_id()
        a, b, c, elsewhere = (new_run_id() for _ in range(4))
        await self._run(log, session, a, range(1, 3), end=True)
        await self._run(log, session, b, range(1, 2))
        await log.open(b, session)  # idempotent: still one run
        runs = await log.session_runs(session)  # b has not ended: it comes first
        assert await asyncio.wait_for(anext(runs), WAIT) == b
        await self._run(log, other, elsewhere, range(1, 2))
        await self._run(log, session, c, range(1, 2))
        assert await asyncio.wait_for(anext(runs), WAIT) == c
        after_a = await log.session_runs(session, after_run=a)
        assert [await asyncio.wait_for(anext(after_a), WAIT) for _ in range(2)] == [b, c]

    async def test_following_a_session_gets_the_run_in_progress_then_the_next(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        session, a, b, c = (new_run_id() for _ in range(4))
        await self._run(log, session, a, range(1, 3), end=True)  # ended: history, not news
        await self._run(log, session, b, range(1, 3))
        stream = await follow_session(log, session)
        assert await take(stream, 2) == [f"{b}:1", f"{b}:2"]
        await self._run(log, session, b, range(3, 4), end=True)
        await self._run(log, session, c, range(1, 3))
        assert await take(stream, 3) == [f"{b}:3", f"{c}:1", f"{c}:2"]

    async def test_a_session_without_runs_is_followed_from_its_first_run(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        session, a = new_run_id(), new_run_id()
        stream = await follow_session(log, session)
        first = asyncio.ensure_future(take(stream, 2))
        await asyncio.sleep(0)
        await self._run(log, session, a, range(1, 3), end=True)
        assert await first == [f"{a}:1", f"{a}:2"]

    async def test_resuming_a_session_gets_exactly_what_was_missed(
        self, make_log: MakeEventLog
    ) -> None:
        log = await self._log(make_log)
        session, a, b = (new_run_id() for _ in range(3))
        await self._run(log, session, a, range(1, 4), end=True)
        await self._run(log, session, b, range(1, 3))
        stream = await follow_session(log, session, after=f"{a}:2")
        assert await take(stream, 3) == [f"{a}:3", f"{b}:1", f"{b}:2"]
        end_of_a = await follow_session(log, session, after=f"{a}:3")
        assert await take(end_of_a, 1) == [f"{b}:1"]

    async def test_bad_session_resumes_are_refused(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        session, other, a, b = (new_run_id() for _ in range(4))
        await self._run(log, session, a, range(1, 3))
        await self._run(log, other, b, range(1, 3))
        with pytest.raises(RunLogNotFound, match=b):
            await follow_session(log, session, after=f"{b}:1")  # not a run of this session
        for bad_after in ("nonsense", f"{a}:x", f"{a}:9"):
            with pytest.raises(InvalidArgumentError):
                await follow_session(log, session, after=bad_after)
        for bad_session in ("", "../x", "a:1"):
            with pytest.raises(InvalidArgumentError):
                await follow_session(log, bad_session)
            with pytest.raises(InvalidArgumentError):
                await log.open(a, bad_session)

    async def test_an_expired_run_leaves_its_session(
        self, make_log: MakeEventLog, clock: FakeClock
    ) -> None:
        log = await self._log(make_log, retention=60.0)
        session, a = new_run_id(), new_run_id()
        await self._run(log, session, a, range(1, 3), end=True)
        await self.advance(log, clock, 61.0)
        with pytest.raises(RunLogNotFound):
            await follow_session(log, session, after=f"{a}:1")

    async def test_aclose_ends_session_followers(self, make_log: MakeEventLog) -> None:
        log = await self._log(make_log)
        session = new_run_id()
        runs = await log.session_runs(session)
        waiting = asyncio.ensure_future(asyncio.wait_for(anext(runs, None), WAIT))
        await asyncio.sleep(0.01)
        await log.aclose()
        assert await waiting is None
