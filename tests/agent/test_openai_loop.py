"""The agent loop against a real OpenAI-compatible server on 127.0.0.1 (through the
official SDK): what the server streams is stored safely, and tool call arguments that
are not a JSON object fail the turn cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spectra_core import MessageEntry, SessionManager
from spectra_core.agent.tools import tool
from spectra_core.engine import EventType, RunEvent, RunStatus, SessionEngine
from spectra_core.testing import FakeClock

pytestmark = pytest.mark.needs_plugins

MODEL = {"id": "fake-model", "provider": "openai"}


async def run_against(
    server: Any, manager: SessionManager, clock: FakeClock, **options: Any
) -> list[RunEvent]:
    provider = server.provider()
    engine = SessionEngine(manager, clock=clock, providers={"openai": provider})
    engine.start()
    try:
        stream = await engine.run_streaming("u", "go", options={"model": MODEL, **options})
        return await asyncio.wait_for(_collect(stream), 60)
    except TimeoutError:
        pytest.fail("the run never ended")
    finally:
        await engine.stop()
        await provider.aclose()


async def _collect(stream: Any) -> list[RunEvent]:
    return [e async for e in stream]


@tool
def get_weather(city: str) -> str:
    """Weather of a city."""
    return f"sunny in {city}"


async def test_a_streamed_reply_with_surrogates_is_stored_with_replacement_characters(
    openai_server: Any, disk_manager: SessionManager, clock: FakeClock
) -> None:
    from spectra_openai.testing import Completion

    openai_server.script(Completion(reasoning="hm\udc00", text="a \ud800 b \udfff", chunk_size=2))
    events = await run_against(openai_server, disk_manager, clock)
    end = events[-1]
    assert end.status is RunStatus.COMPLETED, end.error
    for e in events:
        e.to_dict()
    session = await disk_manager.load(end.session_id)
    reply = [e.message for e in session.entries if isinstance(e, MessageEntry)][-1]
    assert reply.text == "a \ufffd b \ufffd"


@pytest.mark.parametrize("arguments", ['["Paris"]', '"Paris"', "[1, [2, {", '{"city": NaN}'])
async def test_tool_call_arguments_that_are_not_an_object_fail_the_turn_cleanly(
    openai_server: Any, disk_manager: SessionManager, clock: FakeClock, arguments: str
) -> None:
    from spectra_openai.testing import Completion, FakeToolCall

    call = FakeToolCall("c1", "get_weather", arguments)
    openai_server.script(Completion(tool_calls=[call], chunk_size=3))
    events = await run_against(openai_server, disk_manager, clock, tools=[get_weather])
    end = events[-1]
    assert end.type is EventType.RUN_END and end.status is RunStatus.FAILED
    assert "tool call 0 ('get_weather')" in (end.error or "")
    assert not [e for e in events if e.type is EventType.TOOL_EXECUTION_START]
    for e in events:  # the partial tool call of every update can be sent to a client
        e.to_dict()
    session = await disk_manager.load(end.session_id)
    roles = [e.message.role for e in session.entries if isinstance(e, MessageEntry)]
    assert roles == ["user"]
    assert len(openai_server.requests) == 1  # refused, not retried
