"""The agent loop (spectra_core.engine._turn): streamed messages share one builder (memory
linear in the output), what models and tools produce is stored safely, and whatever a
provider or a tool raises, the run ends with its terminal event and the caller's event
loop keeps running."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import attrs
import pytest

from spectra_core import (
    AssistantMessage,
    MessageEntry,
    SessionManager,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
)
from spectra_core.agent import ModelRequest, ProviderEvent, TextDelta
from spectra_core.agent.builtin import EchoProvider, ScriptedProvider
from spectra_core.agent.tools import tool
from spectra_core.engine import EventType, RunEvent, RunStatus, SessionEngine
from spectra_core.testing import FakeClock

pytestmark = pytest.mark.needs_plugins

T = TypeVar("T")


def make_engine(manager: SessionManager, clock: FakeClock, **kw: Any) -> SessionEngine:
    engine = SessionEngine(manager, clock=clock, engine_id="loop-test", **kw)
    engine.start()
    return engine


async def settle(work: Awaitable[T]) -> T:
    """Await ``work``, failing the test if it never ends (a run that hangs)."""
    try:
        return await asyncio.wait_for(work, 60)
    except TimeoutError:
        pytest.fail("the run never ended")


async def collect(stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [e async for e in stream]


async def run_events(engine: SessionEngine, text: str = "go", **options: Any) -> list[RunEvent]:
    return await settle(collect(await engine.run_streaming("u", text, options=options)))


def messages(session: Any) -> list[Any]:
    return [e.message for e in session.entries if isinstance(e, MessageEntry)]


def streamed_text(events: list[RunEvent]) -> str:
    return "".join(
        e.delta["text"]
        for e in events
        if e.type is EventType.MESSAGE_UPDATE and e.delta and e.delta["type"] == "text"
    )


# --- memory linear in the output ------------------------------------------------------


async def test_updates_share_one_builder_and_build_the_message_on_demand(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = make_engine(manager, clock, provider=EchoProvider(prefix="", chunk_size=4))
    events = await run_events(engine, "abcdefghij" * 10)
    start = next(e for e in events if e.type is EventType.MESSAGE_START)
    updates = [e for e in events if e.type is EventType.MESSAGE_UPDATE]
    assert len(updates) == 25
    assert start.partial is not None and start.partial.count == 0
    # one shared append-only builder; each event holds only its position in it
    assert {id(e.partial.builder) for e in updates if e.partial} == {id(start.partial.builder)}
    assert [e.partial.count for e in updates if e.partial] == list(range(1, 26))
    so_far = ""
    for e in updates:
        assert e.delta is not None
        so_far += e.delta["text"]
        assert e.message is not None and e.message.text == so_far
        assert e.to_dict()["message"]["content"] == [{"type": "text", "text": so_far}]
    assert start.message == AssistantMessage((), model="echo", provider="echo")
    end = next(e for e in events if e.type is EventType.MESSAGE_END)
    assert end.partial is None
    assert end.assistant_message is not None and end.assistant_message.text == so_far


async def _streaming_peak(chars: int, clock: FakeClock) -> int:
    """Bytes allocated at the peak of a run streaming ``chars`` characters whose events
    are all kept (what a reader that has not caught up holds)."""
    from spectra_memory import InMemorySessionStore

    engine = make_engine(
        SessionManager(InMemorySessionStore(), clock=clock),
        clock,
        provider=EchoProvider(prefix="", chunk_size=8),
        max_input_chars=chars,
    )
    text = "x" * chars
    gc.collect()
    tracemalloc.start()
    try:
        events = await run_events(engine, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streamed_text(events) == text
    await engine.stop()
    return peak


async def test_memory_of_a_streamed_run_grows_linearly_with_its_output(clock: FakeClock) -> None:
    small = await _streaming_peak(10_000, clock)
    large = await _streaming_peak(40_000, clock)
    # 4x the output: linear memory is about 4x the peak, a copy per delta 16x
    assert large < 6 * small, (small, large)


async def test_a_partial_tool_call_shows_its_arguments_so_far(
    manager: SessionManager, clock: FakeClock
) -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    reply = AssistantMessage([ToolCall("c1", "add", {"a": 1, "b": 2})], stop_reason="tool_use")
    engine = make_engine(manager, clock, provider=ScriptedProvider([reply, "3"], chunk_size=3))
    events = await run_events(engine, tools=[add])
    updates = [e for e in events if e.type is EventType.MESSAGE_UPDATE and e.turn == 1]
    first_call = updates[0].assistant_message
    assert first_call is not None
    assert first_call.tool_calls == (ToolCall("c1", "add", {}),)
    second = updates[1].assistant_message
    assert second is not None
    assert second.tool_calls == (ToolCall("c1", "add", {"_partial_arguments": '{"a'}),)
    assert [d.delta["id"] for d in updates if d.delta] == ["c1"] * len(updates)
    assert updates[-1].message == AssistantMessage(
        [ToolCall("c1", "add", {"a": 1, "b": 2})], model="echo", provider="echo"
    )
    assert events[-1].status is RunStatus.COMPLETED


# --- text that cannot be stored -------------------------------------------------------


async def test_a_model_reply_with_surrogates_is_stored_with_replacement_characters(
    disk_manager: SessionManager, clock: FakeClock
) -> None:
    reply = "bad \ud800 reply \udfff!"
    engine = make_engine(disk_manager, clock, provider=ScriptedProvider([reply], chunk_size=3))
    events = await run_events(engine)
    assert events[-1].status is RunStatus.COMPLETED, events[-1].error
    assert streamed_text(events) == "bad \ufffd reply \ufffd!"
    for e in events:
        e.to_dict()
    session = await disk_manager.load(events[-1].session_id)
    assert messages(session)[-1].text == "bad \ufffd reply \ufffd!"


async def test_thinking_and_tool_call_arguments_with_surrogates_are_stored_safely(
    disk_manager: SessionManager, clock: FakeClock
) -> None:
    def show(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    shown = tool(show, parameters={"type": "object", "properties": {}})
    with attrs.validators.disabled():  # as a provider that bypasses the models' checks
        reply = AssistantMessage(
            [ThinkingContent("hmm \udc00"), ToolCall("c\ud800", "show", {"k\udc01": ["v\ud801"]})],
            stop_reason="tool_use",
        )
    engine = make_engine(disk_manager, clock, provider=ScriptedProvider([reply, "done"]))
    events = await run_events(engine, tools=[shown])
    assert events[-1].status is RunStatus.COMPLETED, events[-1].error
    stored = messages(await disk_manager.load(events[-1].session_id))
    assert stored[1].content == (
        ThinkingContent("hmm \ufffd"),
        ToolCall("c\ufffd", "show", {"k\ufffd": ["v\ufffd"]}),
    )
    assert stored[2] == ToolResultMessage("c\ufffd", "show", '{"k\ufffd": ["v\ufffd"]}')


async def test_a_tool_result_with_surrogates_is_stored_with_replacement_characters(
    disk_manager: SessionManager, clock: FakeClock
) -> None:
    @tool
    def lookup() -> str:
        return "found \udcff it"

    reply = AssistantMessage([ToolCall("c1", "lookup", {})], stop_reason="tool_use")
    engine = make_engine(disk_manager, clock, provider=ScriptedProvider([reply, "ok"]))
    events = await run_events(engine, tools=[lookup])
    assert events[-1].status is RunStatus.COMPLETED, events[-1].error
    stored = messages(await disk_manager.load(events[-1].session_id))
    assert stored[2] == ToolResultMessage("c1", "lookup", "found \ufffd it")


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "arguments",
    [[1, 2], "a=1", None, {"x": math.nan}, {1: "int key"}, {"s": {1, 2}}, _deep(500)],
    ids=["list", "string", "none", "nan", "int-key", "set", "too-deep"],
)
async def test_tool_call_arguments_that_are_not_a_json_object_fail_the_turn_cleanly(
    disk_manager: SessionManager, clock: FakeClock, arguments: Any
) -> None:
    calls: list[Any] = []

    @tool
    def add(a: int = 0, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    with attrs.validators.disabled():  # as a provider that bypasses the models' checks
        reply = AssistantMessage([ToolCall("c1", "add", arguments)], stop_reason="tool_use")
    engine = make_engine(disk_manager, clock, provider=ScriptedProvider([reply]))
    events = await run_events(engine, tools=[add])
    end = events[-1]
    assert end.type is EventType.RUN_END and end.status is RunStatus.FAILED
    assert "ProviderError" in (end.error or "")
    assert "tool 'add'" in (end.error or "") and "JSON object" in (end.error or "")
    assert calls == []
    for e in events:
        e.to_dict()
    session = await disk_manager.load(end.session_id)  # nothing unloadable was written
    assert [m.role for m in messages(session)] == ["user"]
    assert engine.active_session_count == 0


# --- whatever a provider raises, the run ends -----------------------------------------


class Exploding:
    """Streams a little, then raises ``exc`` (a BaseException that is not an Exception)."""

    def __init__(self, exc: BaseException, after_output: bool) -> None:
        self.exc = exc
        self.after_output = after_output

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        if self.after_output:
            yield TextDelta("partial ")
        raise self.exc

    async def aclose(self) -> None:
        """Nothing to release."""


def in_fresh_loop(main: Awaitable[T]) -> T:
    try:
        return asyncio.run(main)  # type: ignore[arg-type]
    except BaseException as exc:
        pytest.fail(f"the run tore down the caller's event loop with {type(exc).__name__}")


@pytest.mark.parametrize("exc", [SystemExit(2), KeyboardInterrupt()], ids=["exit", "interrupt"])
@pytest.mark.parametrize("after_output", [False, True], ids=["at-once", "after-output"])
def test_a_provider_raising_system_exit_fails_the_run(
    exc: BaseException, after_output: bool
) -> None:
    from spectra_memory import InMemorySessionStore

    async def main() -> list[RunEvent]:
        clock = FakeClock()
        manager = SessionManager(InMemorySessionStore(), clock=clock)
        engine = make_engine(manager, clock, provider=Exploding(exc, after_output))
        events = await run_events(engine)
        await settle(engine.stop())
        return events

    end = in_fresh_loop(main())[-1]
    assert end.status is RunStatus.FAILED
    assert f"raised {type(exc).__name__}" in (end.error or "")


@pytest.mark.parametrize("after_output", [False, True], ids=["at-once", "after-output"])
async def test_a_cancelled_error_raised_by_the_provider_is_a_failure_not_an_abort(
    manager: SessionManager, clock: FakeClock, after_output: bool
) -> None:
    engine = make_engine(
        manager, clock, provider=Exploding(asyncio.CancelledError("mine"), after_output)
    )
    end = (await run_events(engine))[-1]
    assert end.status is RunStatus.FAILED
    assert "raised CancelledError: mine" in (end.error or "")


@pytest.mark.parametrize("escape", [SystemExit, KeyboardInterrupt])
def test_a_tool_raising_system_exit_is_an_error_result_and_the_run_goes_on(
    escape: type[BaseException],
) -> None:
    from spectra_memory import InMemorySessionStore

    @tool
    def quit_now() -> str:
        raise escape

    async def main() -> list[RunEvent]:
        clock = FakeClock()
        manager = SessionManager(InMemorySessionStore(), clock=clock)
        reply = AssistantMessage([ToolCall("c1", "quit_now", {})], stop_reason="tool_use")
        engine = make_engine(manager, clock, provider=ScriptedProvider([reply, "fine"]))
        events = await run_events(engine, tools=[quit_now])
        await settle(engine.stop())
        return events

    events = in_fresh_loop(main())
    end = next(e for e in events if e.type is EventType.TOOL_EXECUTION_END)
    assert end.is_error and f"failed: {escape.__name__}" in (end.result.text if end.result else "")
    assert events[-1].status is RunStatus.COMPLETED


async def test_an_abort_during_a_tool_call_ends_the_run_and_cancels_the_tool(
    manager: SessionManager, clock: FakeClock
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    reply = AssistantMessage([ToolCall("c1", "wait_forever", {})], stop_reason="tool_use")
    engine = make_engine(manager, clock, provider=ScriptedProvider([reply]))
    stream = await engine.run_streaming("u", "go", options={"tools": [wait_forever]})
    first = await anext(stream)
    await settle(started.wait())
    assert engine.abort_session(first.session_id)
    events = [first, *await settle(collect(stream))]
    assert events[-1].status is RunStatus.ABORTED
    await settle(cancelled.wait())
    await settle(engine.stop())


async def test_progress_after_the_tool_call_ended_is_dropped(
    manager: SessionManager, clock: FakeClock
) -> None:
    started, release, late_done = threading.Event(), threading.Event(), threading.Event()

    @tool(timeout=5)
    def slow(progress: Any) -> str:
        progress("in time")
        started.set()
        release.wait(30)
        progress("too late")  # the call timed out: nobody may see this
        late_done.set()
        return "never seen"

    async def second_call(request: ModelRequest) -> str:
        release.set()
        await asyncio.to_thread(late_done.wait, 30)
        await asyncio.sleep(0)  # let a late update scheduled by the thread run, if any
        return "done"

    reply = AssistantMessage([ToolCall("c1", "slow", {})], stop_reason="tool_use")
    engine = make_engine(manager, clock, provider=ScriptedProvider([reply, second_call]))
    stream = await engine.run_streaming("u", "go", options={"tools": [slow]})
    events = asyncio.ensure_future(collect(stream))
    await asyncio.to_thread(started.wait, 30)
    while clock.sleepers < 2:  # the run's watchdog and the tool's timeout
        await asyncio.sleep(0)
    clock.advance(6)
    kinds = [(e.type, e.delta) for e in await settle(events)]
    updates = [d for t, d in kinds if t is EventType.TOOL_EXECUTION_UPDATE]
    assert updates == [{"type": "progress", "text": "in time"}]
    assert kinds[-1][0] is EventType.RUN_END
