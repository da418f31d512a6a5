"""The original's Quick Start against a real OpenAI-compatible server on 127.0.0.1,
through the official SDK (spectra-openai) and the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stamina

from spectra_core import (
    CompositeRateLimiter,
    LocalRateLimiter,
    MessageEntry,
    SessionManager,
    ToolResultMessage,
)
from spectra_core.agent.tools import tool
from spectra_core.config import build_engine, load_config
from spectra_core.engine import EventType, RunStatus, SessionEngine
from spectra_core.plugins import load_plugins
from spectra_openai import testing
from spectra_openai.testing import Completion, ErrorReply, FakeToolCall

pytestmark = pytest.mark.needs_plugins


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with testing.FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: Any) -> Iterator[None]:
    server.reset()
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Current weather of a city."""
    return {"city": city, "sky": "sunny", "celsius": 21}


MODEL = {"id": "gpt-4o", "name": "GPT-4o", "provider": "openai", "api": "openai"}


def engine_for(server: Any, manager: SessionManager, **kw: Any) -> SessionEngine:
    engine = SessionEngine(
        manager,
        rate_limiter=CompositeRateLimiter(
            [
                {"limiter": LocalRateLimiter(60, 60_000), "key": "tenant"},
                {"limiter": LocalRateLimiter(15, 60_000), "key": "user"},
            ]
        ),
        max_concurrent_sessions=100,
        providers={"openai": server.provider()},
        close_providers=True,
        **kw,
    )
    engine.start()
    return engine


async def test_quick_start_run(server: Any, manager: SessionManager) -> None:
    server.script(Completion(text="Rust is a systems programming language.", usage=(12, 7)))
    engine = engine_for(server, manager)
    result = await engine.run(
        "user-123",
        "What is Rust?",
        None,
        {
            "model": MODEL,
            "system_prompt": "You are a helpful assistant.",
            "tenant_id": "t",
        },
    )
    assert result.status is RunStatus.COMPLETED
    assert result.final_message is not None
    assert result.final_message.text == "Rust is a systems programming language."
    assert result.final_message.usage is not None
    assert result.final_message.usage.input_tokens == 12
    sent = server.requests[0].json
    assert sent["model"] == "gpt-4o" and sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is Rust?"},
    ]
    await engine.stop(True)


@pytest.fixture
async def engine(server: Any, manager: SessionManager) -> Any:
    engine = engine_for(server, manager)
    yield engine
    await engine.stop()


async def test_streaming_with_tool_calls_and_a_429(
    server: Any, manager: SessionManager, engine: SessionEngine
) -> None:
    server.script(
        ErrorReply(429, headers={"Retry-After": "1"}),
        Completion(
            text="Let me check.",
            tool_calls=[FakeToolCall("call_1", "get_weather", {"city": "Paris"})],
        ),
        Completion(text="It is sunny in Paris, 21°C.", chunk_size=3),
    )
    stream = await engine.run_streaming(
        "user-456",
        "Weather in Paris?",
        None,
        {
            "model": MODEL,
            "tools": [get_weather],
            "tenant_id": "t",
        },
    )
    events = [e async for e in stream]
    assert events[-1].status is RunStatus.COMPLETED
    streamed = "".join(
        e.delta["text"]
        for e in events
        if e.type == EventType.MESSAGE_UPDATE and e.delta and e.delta["type"] == "text"
    )
    assert streamed == "Let me check.It is sunny in Paris, 21°C."
    tool_end = next(e for e in events if e.type == EventType.TOOL_EXECUTION_END)
    assert tool_end.result is not None and '"sky": "sunny"' in tool_end.result.text
    assert len(server.requests) == 3  # the 429, then two completions
    second = server.requests[2].json["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_1"
    assert server.requests[1].json["tools"][0]["function"]["name"] == "get_weather"
    session = await manager.load(events[0].session_id)
    results = [
        e.message
        for e in session.entries
        if isinstance(e, MessageEntry) and isinstance(e.message, ToolResultMessage)
    ]
    assert len(results) == 1


async def test_server_errors_fail_the_run_cleanly(
    server: Any, manager: SessionManager, engine: SessionEngine
) -> None:
    server.script(ErrorReply(500), ErrorReply(500), ErrorReply(500))
    result = await engine.run("u", "hi", options={"model": MODEL, "tenant_id": "t"})
    assert result.status is RunStatus.FAILED and "500" in (result.error or "")
    assert len(server.requests) == 3
    session = await manager.load(result.session_id)
    assert session.entries[-1].details["status"] == "failed"  # type: ignore[union-attr]
    server.script(ErrorReply(401))
    denied = await engine.run("u", "hi", result.session_id, {"model": MODEL, "tenant_id": "t"})
    assert denied.status is RunStatus.FAILED and "api_key" in (denied.error or "")


async def test_cut_stream_keeps_session_loadable(
    server: Any, manager: SessionManager, engine: SessionEngine
) -> None:
    server.script(Completion(text="a long answer that breaks", stop_after=3, chunk_size=4))
    result = await engine.run("u", "hi", options={"model": MODEL, "tenant_id": "t"})
    assert result.status is RunStatus.FAILED
    session = await manager.load(result.session_id)
    assert [e.message.text for e in session.entries if isinstance(e, MessageEntry)] == ["hi"]


async def test_engine_from_config_talks_to_the_server(server: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "spectra.toml"
    cfg.write_text(f"""
        [store]
        backend = "sqlite"
        path = "{tmp_path / "s.db"}"

        [model]
        provider = "openai"
        model = "local-model"
        base_url = "{server.url}"
    """)
    registry = load_plugins(disabled=[])
    engine = build_engine(load_config(cfg, registry), registry)
    server.script(Completion(text="hello from the local server"))
    engine.start()
    result = await engine.run("u", "hi")
    assert result.text == "hello from the local server"
    assert server.requests[0].json["model"] == "local-model"
    await engine.stop()
    await engine.session_manager.store.aclose()
