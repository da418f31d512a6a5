"""The engine and its event log: every event is logged before anyone reads it, readers
come and go, and whatever the log does, the run still ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import stamina

from spectra_core import (
    AssistantMessage,
    MessageEntry,
    RateLimitedError,
    RunNotFoundError,
    SessionManager,
    ToolCall,
)
from spectra_core.agent.builtin import ScriptedProvider
from spectra_core.agent.tools import tool
from spectra_core.config import build_engine, parse_config
from spectra_core.engine import EventType, RunEvent, RunStatus, SessionEngine
from spectra_core.errors import ConfigError
from spectra_core.event_log import LogEntry
from spectra_core.plugins import load_plugins
from spectra_core.rate_limit import LocalRateLimiter
from spectra_core.testing import FakeClock, GatedProvider

if TYPE_CHECKING:
    from spectra_memory import MemoryEventLog

pytestmark = pytest.mark.needs_plugins

T = TypeVar("T")


def memory_log(clock: FakeClock, **kw: Any) -> MemoryEventLog:
    from spectra_memory import MemoryEventLog

    return MemoryEventLog(clock=clock, **kw)


async def bounded(aw: Awaitable[T], seconds: float = 10) -> T:
    """Await ``aw``, failing the test (not hanging it) if it never completes."""
    async with asyncio.timeout(seconds):
        return await aw


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Any:
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def script() -> ScriptedProvider:
    call = AssistantMessage([ToolCall("c1", "add", {"a": 2, "b": 3})], stop_reason="tool_use")
    return ScriptedProvider([call, "It is five, as the tool said."], chunk_size=3)


def engine_with(manager: SessionManager, clock: FakeClock, **kw: Any) -> SessionEngine:
    engine = SessionEngine(manager, clock=clock, engine_id="logged", **kw)
    engine.start()
    return engine


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [e async for e in stream]


def shape(events: list[RunEvent]) -> list[tuple[Any, ...]]:
    """What a reader sees of each event, message so far included."""
    return [
        (e.type, e.seq, e.delta, e.tool_name, e.status, e.message and e.message.text)
        for e in events
    ]


async def test_streaming_through_the_log_shows_what_the_local_stream_shows(
    manager: SessionManager, clock: FakeClock
) -> None:
    local = engine_with(manager, clock, provider=script())
    logged = engine_with(manager, clock, provider=script(), event_log=memory_log(clock))
    options = {"tools": [add]}
    plain = await collect(await local.run_streaming("u", "2+3?", options=options))
    through = await collect(await logged.run_streaming("u", "2+3?", options=options))
    assert shape(through) == shape(plain)
    updates = [e for e in through if e.type is EventType.MESSAGE_UPDATE]
    assert updates and updates[-1].message is not None
    assert updates[-1].message.text == "It is five, as the tool said."


async def test_the_log_keeps_each_delta_once_not_the_message_so_far(
    manager: SessionManager, clock: FakeClock
) -> None:
    log = memory_log(clock)
    text = "word " * 2_000
    engine = engine_with(manager, clock, provider=ScriptedProvider([text], 5), event_log=log)
    handle = await engine.start_run("u", "talk")
    assert (await bounded(handle.result())).status is RunStatus.COMPLETED
    entries: list[LogEntry] = await collect(await log.subscribe(handle.run_id))
    updates = [e for e in entries if e.type == "message_update"]
    assert len(updates) == 2_000
    assert all("message" not in e.event for e in updates)
    assert max(len(e.json) for e in updates) < 400  # each delta once: linear, not quadratic
    assert [e.id for e in entries] == [f"{handle.run_id}:{i}" for i in range(1, len(entries) + 1)]


async def test_start_run_returns_at_once_and_readers_join_and_resume(
    manager: SessionManager, clock: FakeClock
) -> None:
    gated = GatedProvider()
    engine = engine_with(manager, clock, provider=gated, event_log=memory_log(clock))
    handle = await engine.start_run("u", "hi")
    while gated.calls < 1:
        await asyncio.sleep(0)
    early: list[LogEntry] = []
    async for entry in await engine.subscribe(handle.run_id):
        early.append(entry)
        if entry.type == "message_update":
            break
    gated.release()
    result = await bounded(engine.wait_run(handle.run_id))
    assert result.status is RunStatus.COMPLETED and result.session_id == handle.session_id
    assert await handle.result() == result
    rest = await collect(await engine.subscribe(handle.run_id, after=early[-1].id))
    everything = await collect(await engine.subscribe(handle.run_id))
    assert [e.id for e in early + rest] == [e.id for e in everything]
    assert everything[-1].type == "run_end" and everything[-1].event["status"] == "completed"
    assert {e.event["session_id"] for e in everything} == {handle.session_id}


async def test_a_reader_leaving_does_not_stop_the_run(
    manager: SessionManager, clock: FakeClock
) -> None:
    log = memory_log(clock)
    engine = engine_with(
        manager, clock, provider=ScriptedProvider(["a b c d e f g"], 1), event_log=log
    )
    stream = await engine.run_streaming("u", "go")
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    result = await bounded(engine.wait_run(first.run_id))
    assert result.status is RunStatus.COMPLETED
    assert result.final_message is not None and result.final_message.text == "a b c d e f g"


async def test_without_a_log_start_run_still_runs_and_subscribe_says_why(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = engine_with(manager, clock, provider=ScriptedProvider(["x" * 50_000], 1))
    handle = await engine.start_run("u", "go")  # nobody reads: the run must not wait
    assert (await bounded(handle.result())).status is RunStatus.COMPLETED
    with pytest.raises(ConfigError, match=r"no event log .* \[event_log\]"):
        await engine.subscribe(handle.run_id)
    with pytest.raises(RunNotFoundError, match="'nope'"):
        await engine.wait_run("nope")


async def test_a_rate_limited_start_is_refused_and_a_stream_says_so(
    manager: SessionManager, clock: FakeClock
) -> None:
    limiter = LocalRateLimiter(1, 60_000, clock=clock)
    engine = engine_with(manager, clock, rate_limiter=limiter, event_log=memory_log(clock))
    await (await engine.start_run("u", "one")).result()
    with pytest.raises(RateLimitedError) as info:
        await engine.start_run("u", "two")
    assert info.value.retry_after > 0
    events = await collect(await engine.run_streaming("u", "three"))
    assert [(e.type, e.status) for e in events] == [(EventType.RUN_END, RunStatus.RATE_LIMITED)]


class BrokenLog:
    """A memory log that opens runs, then fails appends after ``good`` of them (a log
    server gone away)."""

    def __init__(self, good: int, clock: FakeClock, refuse_open: bool = False) -> None:
        self.inner = memory_log(clock)
        self.good, self.refuse_open = good, refuse_open

    async def open(self, run_id: str, session_id: str | None = None) -> None:
        if self.refuse_open:
            raise ConnectionError("log server unreachable")
        await self.inner.open(run_id, session_id)

    async def append(self, event: Mapping[str, Any]) -> LogEntry:
        if self.good <= 0:
            raise ConnectionError("log server gone")
        self.good -= 1
        return await self.inner.append(event)

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[LogEntry]:
        return await self.inner.subscribe(run_id, after)

    async def session_runs(
        self, session_id: str, after_run: str | None = None
    ) -> AsyncIterator[str]:
        return await self.inner.session_runs(session_id, after_run)

    async def ping(self) -> None:
        await self.inner.ping()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_failing_log_never_stops_a_run_and_stop_still_returns(
    manager: SessionManager, clock: FakeClock
) -> None:
    log = BrokenLog(good=3, clock=clock)
    engine = engine_with(manager, clock, provider=script(), event_log=log)
    result = await bounded(engine.run("u", "2+3?", options={"tools": [add]}))
    assert result.status is RunStatus.COMPLETED
    session = await manager.load(result.session_id)
    texts = [e.message.text for e in session.entries if isinstance(e, MessageEntry)]
    assert texts[-1] == "It is five, as the tool said."
    await bounded(engine.stop())


async def test_when_the_log_refuses_a_run_its_stream_is_read_locally(
    manager: SessionManager, clock: FakeClock
) -> None:
    log = BrokenLog(good=0, clock=clock, refuse_open=True)
    engine = engine_with(manager, clock, provider=script(), event_log=log)
    events = await bounded(
        collect(await engine.run_streaming("u", "2+3?", options={"tools": [add]}))
    )
    assert events[-1].type is EventType.RUN_END and events[-1].status is RunStatus.COMPLETED


async def test_abort_run_ends_the_logged_stream(manager: SessionManager, clock: FakeClock) -> None:
    gated = GatedProvider()
    engine = engine_with(manager, clock, provider=gated, event_log=memory_log(clock))
    handle = await engine.start_run("u", "hi")
    while gated.calls < 1:
        await asyncio.sleep(0)
    assert engine.abort_run(handle.run_id) is True
    assert engine.abort_run("unknown") is False
    entries = await bounded(collect(await engine.subscribe(handle.run_id)))
    assert entries[-1].event["status"] == "aborted"
    assert engine.abort_run(handle.run_id) is False


async def test_health_pings_the_store_and_the_log(
    manager: SessionManager, clock: FakeClock
) -> None:
    log = BrokenLog(good=0, clock=clock)
    engine = engine_with(manager, clock, event_log=log)
    report = await engine.health()
    assert report.status == "healthy" and set(report.checks) == {"store", "event_log"}
    await log.aclose()  # a closed memory log refuses its ping
    report = await engine.health()
    assert report.status == "unhealthy" and report.checks["event_log"].status == "error"


async def test_an_assembled_engine_logs_its_runs_and_closes_its_backends() -> None:
    config = parse_config(
        {"store": {"backend": "memory"}, "event_log": {"backend": "memory", "max_events": 50}}
    )
    engine = build_engine(config, load_plugins())
    assert type(engine.event_log).__name__ == "MemoryEventLog"
    assert engine.event_log.max_events == 50  # type: ignore[attr-defined]
    engine.start()
    handle = await engine.start_run("u", "hello")
    await bounded(handle.result())
    entries = await collect(await engine.subscribe(handle.run_id))
    assert entries[-1].type == "run_end"
    assert set((await engine.health()).checks) == {"store", "event_log"}
    await engine.stop()
    assert engine.event_log is not None
    with pytest.raises(Exception, match="closed"):
        await engine.event_log.ping()
