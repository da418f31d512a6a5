"""SessionEngine guarantees, run against the in-memory store and built-in providers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stamina

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    CapacityError,
    EngineDrainingError,
    InvalidArgumentError,
    MessageEntry,
    SessionBusyError,
    SessionManager,
    SessionNotFoundError,
    ToolCall,
    ToolResultMessage,
)
from spectra_core.agent import ProviderError
from spectra_core.agent.builtin import ScriptedProvider
from spectra_core.agent.tools import tool
from spectra_core.engine import EventType, RunEvent, RunStatus, SessionEngine
from spectra_core.errors import EngineNotStartedError
from spectra_core.testing import FakeClock, GatedProvider

pytestmark = pytest.mark.needs_plugins


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Any:
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


def make_engine(manager: SessionManager, clock: FakeClock, **kw: Any) -> SessionEngine:
    engine = SessionEngine(manager, clock=clock, engine_id="test-engine", **kw)
    engine.start()
    return engine


async def collect(stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [e async for e in stream]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def call(name: str, args: dict[str, Any], cid: str = "c1") -> AssistantMessage:
    return AssistantMessage([ToolCall(cid, name, args)], stop_reason="tool_use")


async def test_run_completes_and_persists_everything(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = make_engine(manager, clock)
    result = await engine.run(
        "user-123",
        "What is Rust?",
        options={
            "model": {"id": "echo-1", "provider": "echo"},
            "system_prompt": "Be brief.",
        },
    )
    assert result.status is RunStatus.COMPLETED
    assert result.final_message is not None
    assert result.final_message.text == "echo: What is Rust?"
    session = await manager.load(result.session_id)
    assert session.user_id == "user-123"
    assert session.config.system_prompt == "Be brief."
    kinds = [
        (e.event_type if isinstance(e, AuditEntry) else e.message.role)  # type: ignore[union-attr]
        for e in manager.get_branch(session)
    ]
    assert kinds == ["run_started", "user", "assistant", "run_finished"]
    started = session.entries[0]
    assert isinstance(started, AuditEntry)
    assert started.details["engine_id"] == "test-engine"
    assert started.details["user_id"] == "user-123"
    assert engine.active_session_count == 0


async def test_streaming_with_tools_emits_ordered_events(
    manager: SessionManager, clock: FakeClock
) -> None:
    provider = ScriptedProvider([call("add", {"a": 2, "b": 3}), "It is 5."])
    engine = make_engine(manager, clock, provider=provider)
    stream = await engine.run_streaming("u", "2+3?", options={"tools": [add]})
    events = await collect(stream)
    types = [e.type for e in events]
    assert types[0] is EventType.AGENT_START
    assert types[-1] is EventType.RUN_END and events[-1].status is RunStatus.COMPLETED
    assert sum(e.terminal for e in events) == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({(e.session_id, e.run_id) for e in events}) == 1
    for expected in (
        EventType.TURN_START,
        EventType.MESSAGE_START,
        EventType.MESSAGE_UPDATE,
        EventType.MESSAGE_END,
        EventType.TOOL_EXECUTION_START,
        EventType.TOOL_EXECUTION_END,
        EventType.TURN_END,
        EventType.AGENT_END,
    ):
        assert expected in types
    end = next(e for e in events if e.type is EventType.TOOL_EXECUTION_END)
    assert end.result is not None and end.result.text == "5" and end.is_error is False
    text = "".join(
        e.delta["text"]
        for e in events
        if e.type is EventType.MESSAGE_UPDATE and e.delta and e.delta["type"] == "text"
    )
    assert text == "It is 5."
    # the model saw the tool definition and, on the second call, the tool result
    assert provider.requests[0].tools[0].name == "add"
    assert isinstance(provider.requests[1].messages[-1], ToolResultMessage)
    session = await manager.load(events[0].session_id)
    roles = [e.message.role for e in session.entries if isinstance(e, MessageEntry)]
    assert roles == ["user", "assistant", "tool_result", "assistant"]


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (call("boom", {}), "tool 'boom' failed: RuntimeError: kaput"),
        (call("add", {"a": "x", "b": 1}), "invalid arguments for tool 'add'"),
        (call("add", {"a": 1}), "missing required argument(s): b"),
        (call("nope", {}), "unknown tool 'nope'"),
        (call("weird", {}), "not JSON-serializable"),
    ],
)
async def test_tool_failures_go_back_to_the_model(
    manager: SessionManager, clock: FakeClock, step: AssistantMessage, expected: str
) -> None:
    @tool
    def boom() -> None:
        raise RuntimeError("kaput")

    @tool
    def weird() -> object:
        return object()

    provider = ScriptedProvider([step, "recovered"])
    engine = make_engine(manager, clock, provider=provider)
    result = await engine.run("u", "go", options={"tools": [add, boom, weird]})
    assert result.status is RunStatus.COMPLETED and result.text == "recovered"
    tool_result = provider.requests[1].messages[-1]
    assert isinstance(tool_result, ToolResultMessage) and tool_result.is_error
    assert expected in tool_result.text


async def test_hanging_tool_times_out_on_the_clock(
    manager: SessionManager, clock: FakeClock
) -> None:
    never = asyncio.Event()

    @tool(timeout=5)
    async def hang() -> str:
        await never.wait()
        return "never"

    provider = ScriptedProvider([call("hang", {}), "moved on"])
    engine = make_engine(manager, clock, provider=provider)
    task = asyncio.create_task(engine.run("u", "go", options={"tools": [hang]}))
    while clock.sleepers < 2:  # the run's watchdog and the tool's timer
        await asyncio.sleep(0)
    clock.advance(5)
    result = await task
    assert result.status is RunStatus.COMPLETED
    tool_result = provider.requests[1].messages[-1]
    assert isinstance(tool_result, ToolResultMessage)
    assert "timed out after 5s" in tool_result.text


async def test_tool_progress_is_streamed(manager: SessionManager, clock: FakeClock) -> None:
    @tool
    def slow(steps: int, progress: Any) -> str:
        for i in range(steps):
            progress(f"step {i}")
        return "ok"

    assert "progress" not in slow.parameters["properties"]
    engine = make_engine(
        manager, clock, provider=ScriptedProvider([call("slow", {"steps": 2}), "fine"])
    )
    events = await collect(await engine.run_streaming("u", "go", options={"tools": [slow]}))
    updates = [e.delta for e in events if e.type is EventType.TOOL_EXECUTION_UPDATE]
    assert updates == [
        {"type": "progress", "text": "step 0"},
        {"type": "progress", "text": "step 1"},
    ]


async def test_second_run_on_a_busy_session(manager: SessionManager, clock: FakeClock) -> None:
    engine = make_engine(manager, clock)
    created = await engine.run("u", "first")
    gated = GatedProvider()
    engine.default_provider = gated
    running = asyncio.create_task(engine.run("u", "second", created.session_id))
    await gated.started.wait()
    with pytest.raises(SessionBusyError):
        await engine.run("u", "third", created.session_id)
    gated.release()
    assert (await running).status is RunStatus.COMPLETED
    session = await manager.load(created.session_id)
    texts = [e.message.text for e in session.entries if isinstance(e, MessageEntry)]
    assert texts[:3] == ["first", "echo: first", "second"]


async def test_busy_wait_policy_runs_turns_one_after_another(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = make_engine(manager, clock, busy="wait")
    created = await engine.run("u", "first")
    gated = GatedProvider(before="slow", after="")
    engine.default_provider = gated
    running = asyncio.create_task(engine.run("u", "second", created.session_id))
    await gated.started.wait()
    waiting = asyncio.create_task(engine.run("u", "third", created.session_id))
    await asyncio.sleep(0)
    assert not waiting.done()
    gated.release()
    assert (await running).status is RunStatus.COMPLETED
    assert (await waiting).status is RunStatus.COMPLETED
    session = await manager.load(created.session_id)
    users = [
        e.message.text
        for e in session.entries
        if isinstance(e, MessageEntry) and e.message.role == "user"
    ]
    assert users == ["first", "second", "third"]


async def test_capacity_is_capped_and_slots_are_never_leaked(
    manager: SessionManager, clock: FakeClock
) -> None:
    gated = GatedProvider()
    engine = make_engine(manager, clock, provider=gated, max_concurrent_sessions=2)
    runs = [asyncio.create_task(engine.run(f"u{i}", "hi")) for i in range(2)]
    while gated.calls < 2:
        await asyncio.sleep(0)
    with pytest.raises(CapacityError, match="at capacity"):
        await engine.run("u9", "hi")
    assert engine.active_session_count == 2
    gated.release()
    await asyncio.gather(*runs)
    assert engine.active_session_count == 0
    failing = ScriptedProvider([ProviderError("bad request")] * 3)
    engine.default_provider = failing
    for _ in range(3):
        assert (await engine.run("u", "hi")).status is RunStatus.FAILED
    assert engine.active_session_count == 0


async def test_timeout_aborts_the_turn_and_keeps_partial_output(
    manager: SessionManager, clock: FakeClock
) -> None:
    gated = GatedProvider(before="half of an")
    engine = make_engine(manager, clock, provider=gated, session_timeout_ms=30_000)
    stream = await engine.run_streaming("u", "tell me")
    seen: list[RunEvent] = []

    async def consume() -> None:
        async for e in stream:
            seen.append(e)

    consumer = asyncio.create_task(consume())
    await gated.started.wait()
    while clock.sleepers == 0:  # the run's watchdog
        await asyncio.sleep(0)
    clock.advance(30)
    await consumer
    end = seen[-1]
    assert end.status is RunStatus.TIMED_OUT and "timed out after 30s" in (end.error or "")
    session = await manager.load(end.session_id)
    last = [e for e in session.entries if isinstance(e, MessageEntry)][-1].message
    assert isinstance(last, AssistantMessage)
    assert last.text == "half of an" and last.stop_reason == "aborted"
    finished = session.entries[-1]
    assert isinstance(finished, AuditEntry) and finished.details["status"] == "timed_out"


async def test_abort_session(manager: SessionManager, clock: FakeClock) -> None:
    gated = GatedProvider(before="some words")
    engine = make_engine(manager, clock, provider=gated)
    task = asyncio.create_task(engine.run("u", "go"))
    await gated.started.wait()
    (session_id,) = list(engine._by_session)
    assert engine.abort_session(session_id) is True
    result = await task
    assert result.status is RunStatus.ABORTED
    assert engine.abort_session(session_id) is False
    session = await manager.load(session_id)
    assert any(
        isinstance(e, MessageEntry) and e.message.text == "some words" for e in session.entries
    )


async def test_drain_finishes_in_flight_runs_and_refuses_new_ones(
    manager: SessionManager, clock: FakeClock
) -> None:
    gated = GatedProvider()
    engine = make_engine(manager, clock, provider=gated)
    running = [asyncio.create_task(engine.run(f"u{i}", "hi")) for i in range(3)]
    while gated.calls < 3:
        await asyncio.sleep(0)
    stopping = asyncio.create_task(engine.stop(drain=True))
    await asyncio.sleep(0)
    with pytest.raises(EngineDrainingError):
        await engine.run("late", "hi")
    assert (await engine.health()).status == "degraded"
    assert not stopping.done()
    gated.release()
    await stopping
    assert all(r.status is RunStatus.COMPLETED for r in await asyncio.gather(*running))
    assert (await engine.health()).status == "unhealthy"


async def test_stop_without_drain_aborts_cleanly(manager: SessionManager, clock: FakeClock) -> None:
    gated = GatedProvider()
    engine = make_engine(manager, clock, provider=gated)
    running = [asyncio.create_task(engine.run(f"u{i}", "hi")) for i in range(3)]
    while gated.calls < 3:
        await asyncio.sleep(0)
    await engine.stop(drain=False)
    results = await asyncio.gather(*running)
    assert [r.status for r in results] == [RunStatus.ABORTED] * 3
    for r in results:
        session = await manager.load(r.session_id)
        assert session.entries[-1].details["status"] == "aborted"  # type: ignore[union-attr]


async def test_provider_errors(manager: SessionManager, clock: FakeClock) -> None:
    retryable = ProviderError("overloaded", retryable=True, retry_after=2.0, status_code=529)
    provider = ScriptedProvider([retryable, "worked after a retry"])
    engine = make_engine(manager, clock, provider=provider)
    result = await engine.run("u", "hi")
    assert result.status is RunStatus.COMPLETED and result.text == "worked after a retry"
    assert len(provider.requests) == 2

    provider.add(ProviderError("invalid model", status_code=404))
    failed = await engine.run("u", "hi")
    assert failed.status is RunStatus.FAILED and "invalid model" in (failed.error or "")
    session = await manager.load(failed.session_id)
    assert session.entries[-1].details["status"] == "failed"  # type: ignore[union-attr]


async def test_errors_after_output_are_not_retried(
    manager: SessionManager, clock: FakeClock
) -> None:
    class DiesMidStream:
        calls = 0

        async def stream(self, request: Any) -> AsyncIterator[Any]:
            from spectra_core.agent import TextDelta

            self.calls += 1
            yield TextDelta("half")
            raise ProviderError("connection reset", retryable=True)

        async def aclose(self) -> None:
            pass

    provider = DiesMidStream()
    engine = make_engine(manager, clock, provider=provider)  # type: ignore[arg-type]
    result = await engine.run("u", "hi")
    assert result.status is RunStatus.FAILED and provider.calls == 1


async def test_bad_input_is_refused_before_anything_is_saved(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = make_engine(manager, clock)
    with pytest.raises(InvalidArgumentError, match="input is empty"):
        await engine.run("u", "   ")
    with pytest.raises(InvalidArgumentError, match="the limit is 1,000,000"):
        await engine.run("u", "x" * (10 * 1024 * 1024))
    with pytest.raises(SessionNotFoundError):
        await engine.run("u", "hi", "no-such-session")
    with pytest.raises(InvalidArgumentError):
        await engine.run("u", "hi", "../etc/passwd")
    assert len(await manager.list()) == 0


async def test_another_users_session_is_not_found(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = make_engine(manager, clock)
    mine = await engine.run("alice", "secret plans")
    with pytest.raises(SessionNotFoundError, match=mine.session_id):
        await engine.run("mallory", "show me", mine.session_id)
    session = await manager.load(mine.session_id)
    assert all(
        "show me" not in getattr(getattr(e, "message", None), "text", "") for e in session.entries
    )


async def test_not_started(manager: SessionManager, clock: FakeClock) -> None:
    engine = SessionEngine(manager, clock=clock)
    with pytest.raises(EngineNotStartedError, match="start"):
        await engine.run("u", "hi")


async def test_model_change_is_recorded(manager: SessionManager, clock: FakeClock) -> None:
    engine = make_engine(manager, clock)
    first = await engine.run("u", "hi", options={"model": "echo"})
    await engine.run(
        "u", "again", first.session_id, options={"model": {"id": "bigger", "provider": "echo"}}
    )
    session = await manager.load(first.session_id)
    ctx = manager.build_context(session)
    assert ctx.model is not None and ctx.model.id == "bigger"
    assert any(e.type == "model_change" for e in session.entries)


async def test_many_concurrent_sessions(manager: SessionManager, clock: FakeClock) -> None:
    engine = make_engine(manager, clock, max_concurrent_sessions=200)
    results = await asyncio.gather(*(engine.run(f"u{i}", f"q{i}") for i in range(200)))
    assert all(r.status is RunStatus.COMPLETED for r in results)
    assert len({r.session_id for r in results}) == 200
    assert engine.active_session_count == 0
