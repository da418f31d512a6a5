"""A run's end: whatever raises, where and when, an admitted run ends with exactly one
terminal event, frees its slot and claim, saves its audit, and stop(drain=True) returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import stamina

from spectra_core import AuditEntry, MessageEntry, Session, SessionManager
from spectra_core.agent import ModelRequest, ProviderEvent, TextDelta
from spectra_core.agent.builtin import EchoProvider, ScriptedProvider
from spectra_core.engine import EventType, RunEvent, RunStatus, SessionEngine
from spectra_core.testing import FakeClock, GatedProvider

from ._doubles import FaultyStore, bounded, finishing

pytestmark = pytest.mark.needs_plugins


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Any:
    with stamina.set_testing(True, attempts=1):
        yield


class Boom(BaseException):
    """Not an Exception: what a careless library may raise."""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def started(manager: SessionManager, clock: FakeClock, **kw: Any) -> SessionEngine:
    engine = SessionEngine(manager, clock=clock, **kw)
    engine.start()
    return engine


async def ended(engine: SessionEngine, stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    """Every event of the run; it must end, once, and leave the engine idle."""
    events = await bounded(_collect(stream))
    assert sum(e.terminal for e in events) == 1 and events[-1].terminal
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert engine.active_session_count == 0
    return events


async def _collect(stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [e async for e in stream]


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"),
        RuntimeError("store bug"),
        Unprintable(),
        Boom("not an Exception"),
    ],
    ids=type,
)
async def test_any_failure_of_the_final_save_still_ends_the_run(
    clock: FakeClock, error: BaseException
) -> None:
    store = FaultyStore(lambda s: error if finishing(s) else None)
    manager = SessionManager(store, clock=clock)
    engine = started(manager, clock)
    events = await ended(engine, await engine.run_streaming("u", "hi"))
    assert events[-1].status is RunStatus.FAILED
    assert "could not save the session" in (events[-1].error or "")
    # the slot and the session claim are free: the next run on the session goes through
    store.fault = None
    again = await bounded(engine.run("u", "again", events[0].session_id))
    assert again.status is RunStatus.COMPLETED
    await bounded(engine.stop(drain=True))


@pytest.mark.parametrize(
    "error",
    [Boom("from the provider"), SystemExit(3), KeyboardInterrupt(), Unprintable()],
    ids=type,
)
async def test_a_provider_raising_anything_fails_the_run_only(
    manager: SessionManager, clock: FakeClock, error: BaseException
) -> None:
    engine = started(manager, clock, provider=ScriptedProvider([error]))
    events = await ended(engine, await engine.run_streaming("u", "hi"))
    end = events[-1]
    assert end.status is RunStatus.FAILED and type(error).__name__ in (end.error or "")
    session = await manager.load(end.session_id)
    finished = session.entries[-1]
    assert isinstance(finished, AuditEntry) and finished.details["status"] == "failed"
    await bounded(engine.stop(drain=True))


async def test_a_cancellation_that_is_not_an_abort_fails_the_run(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = started(manager, clock, provider=ScriptedProvider([asyncio.CancelledError()]))
    events = await ended(engine, await engine.run_streaming("u", "hi"))
    assert events[-1].status is RunStatus.FAILED
    assert "CancelledError" in (events[-1].error or "")


async def test_abort_during_a_save_that_lands_keeps_the_audit(clock: FakeClock) -> None:
    store = FaultyStore()
    manager = SessionManager(store, clock=clock)
    gated = GatedProvider(before="some", after=" words")
    engine = started(manager, clock, provider=gated)
    stream = await engine.run_streaming("u", "go")
    consumer = asyncio.create_task(_collect(stream))
    await bounded(gated.started.wait())
    store.pause_saves(land=True)  # the assistant message's save lands, its ack hangs
    gated.release()
    await bounded(store.entered.wait())
    session_id = next(iter(engine._by_session))
    assert engine.abort_session(session_id)
    store.resume()
    events = await bounded(consumer)
    assert events[-1].status is RunStatus.ABORTED and events[-1].error == "aborted"
    saved = await manager.load(session_id)
    kinds = [
        e.event_type if isinstance(e, AuditEntry) else e.message.role  # type: ignore[union-attr]
        for e in saved.entries
    ]
    assert kinds == ["run_started", "user", "assistant", "run_finished"]
    assert saved.entries[-1].details["status"] == "aborted"  # type: ignore[union-attr]
    await bounded(engine.stop(drain=True))


async def test_error_text_that_cannot_be_stored_is_replaced(tmp_path: Path) -> None:
    from spectra_sqlite import SQLiteSessionStore

    async with SQLiteSessionStore(tmp_path / "s.db") as store:
        manager = SessionManager(store)
        provider = ScriptedProvider([RuntimeError("bad byte \udcff from upstream")])
        engine = SessionEngine(manager, provider=provider)
        engine.start()
        events = await ended(engine, await engine.run_streaming("u", "hi"))
        assert events[-1].error == "RuntimeError: bad byte \ufffd from upstream"
        saved = await manager.load(events[0].session_id)
        assert saved.entries[-1].details["error"] == events[-1].error  # type: ignore[union-attr]
        await bounded(engine.stop(drain=True))


class CountingEcho(EchoProvider):
    """The echo provider, one character per delta, counting what it has produced."""

    def __init__(self) -> None:
        super().__init__(prefix="", chunk_size=1)
        self.produced = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        async for event in super().stream(request):
            self.produced += isinstance(event, TextDelta)
            yield event


async def test_a_slow_reader_pauses_the_run_instead_of_growing_its_queue(
    manager: SessionManager, clock: FakeClock
) -> None:
    provider = CountingEcho()
    engine = started(manager, clock, provider=provider, max_queued_events=16)
    stream = await engine.run_streaming("u", "x" * 2_000)
    for _ in range(500):  # the reader reads nothing for a while
        await asyncio.sleep(0)
    assert 0 < provider.produced <= 20
    events = await ended(engine, stream)
    text = "".join(
        e.delta["text"] for e in events if e.type is EventType.MESSAGE_UPDATE and e.delta
    )
    assert text == "x" * 2_000 and events[-1].status is RunStatus.COMPLETED


async def test_a_reader_that_leaves_releases_the_run(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = started(manager, clock, provider=CountingEcho(), max_queued_events=4)
    stream = await engine.run_streaming("u", "y" * 500)
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    await bounded(engine.stop(drain=True))  # the run went on to its end without a reader
    saved = await manager.load(first.session_id)
    answer = [e for e in saved.entries if isinstance(e, MessageEntry)][-1].message
    assert answer.text == "y" * 500


async def test_a_reader_that_never_reads_is_timed_out(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = started(
        manager, clock, provider=CountingEcho(), max_queued_events=4, session_timeout_ms=5_000
    )
    stream = await engine.run_streaming("u", "z" * 500)
    while clock.sleepers == 0:  # the watchdog
        await asyncio.sleep(0)
    clock.advance(5)
    events = await ended(engine, stream)
    assert events[-1].status is RunStatus.TIMED_OUT
    session: Session = await manager.load(events[0].session_id)
    assert session.entries[-1].details["status"] == "timed_out"  # type: ignore[union-attr]
    await bounded(engine.stop(drain=True))


@pytest.mark.parametrize("sync", [False, True])
async def test_abort_during_a_tool_call(
    manager: SessionManager, clock: FakeClock, sync: bool
) -> None:
    import threading

    from spectra_core import AssistantMessage, ToolCall
    from spectra_core.agent.tools import tool

    entered, leave = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    @tool(timeout=None)
    async def wait_async() -> str:
        """Wait until aborted."""
        entered.set()
        await asyncio.Event().wait()
        return "never"

    @tool(timeout=None)
    def wait_sync() -> str:
        """Block a thread until told."""
        loop.call_soon_threadsafe(entered.set)
        leave.wait(10)
        return "late"

    chosen = wait_sync if sync else wait_async
    call = AssistantMessage([ToolCall("c1", chosen.name, {})], stop_reason="tool_use")
    engine = started(manager, clock, provider=ScriptedProvider([call, "after"]))
    stream = await engine.run_streaming("u", "go", options={"tools": [chosen]})
    consumer = asyncio.create_task(_collect(stream))
    await bounded(entered.wait())
    session_id = next(iter(engine._by_session))
    assert engine.abort_session(session_id)
    events = await bounded(consumer)
    leave.set()
    assert events[-1].status is RunStatus.ABORTED
    assert sum(e.terminal for e in events) == 1
    saved = await manager.load(session_id)
    assert saved.entries[-1].details["status"] == "aborted"  # type: ignore[union-attr]
    await bounded(engine.stop(drain=True))
