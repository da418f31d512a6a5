"""The fake server itself: script, records, defaults, lifecycle (the engine tests reuse it)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from openai_helpers import ask, collect, final

from spectra_core.agent import ProviderError, TextDelta
from spectra_openai import OpenAIProvider
from spectra_openai.testing import Completion, FakeOpenAIServer, RawStream, Reply


async def test_script_runs_out_with_a_clear_error(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text="only one"))
    assert server.pending == 1
    await final(provider, ask())
    assert server.pending == 0
    with pytest.raises(ProviderError) as info:
        await collect(provider, ask())
    assert info.value.status_code == 400
    assert "no scripted reply left for request #2" in str(info.value)


async def test_callable_reply_sees_the_request(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    def echo(body: dict[str, Any]) -> Reply:
        return Completion(text=f"{body['model']}: {body['messages'][-1]['content']}")

    server.script(echo)
    assert (await final(provider, ask("ping", model="m1"))).text == "m1: ping"


async def test_default_reply(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.default = Completion(text="always")
    for _ in range(3):
        assert (await final(provider, ask())).text == "always"
    assert len(server.requests) == 3
    server.reset()
    assert server.requests == []
    assert server.default is None


async def test_raw_stream_is_sent_verbatim(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(
        RawStream(
            events=[
                {"choices": [{"index": 0, "delta": {"content": "a"}}]},
                '{"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}]}',
            ]
        )
    )
    events = await collect(provider, ask())
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("a"), TextDelta("b")]


async def test_models_endpoint(server: FakeOpenAIServer) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/models")
    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == "fake-model"


async def test_stop_releases_a_waiting_stream() -> None:
    """A test that forgets to open a gate still shuts the server down."""
    server = FakeOpenAIServer().start()
    gate = threading.Event()
    server.script(Completion(text="abc", gate=gate, gate_after=2))
    provider = server.provider()
    try:
        stream = provider.stream(ask())
        assert await anext(stream) == TextDelta("abc")  # then the server waits on the gate
        await asyncio.to_thread(server.stop)
        assert gate.is_set()
        rest = [event async for event in stream]
        assert rest[-1].message.text == "abc"  # type: ignore[union-attr]
    finally:
        await provider.aclose()


def test_lifecycle_errors() -> None:
    server = FakeOpenAIServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.url.endswith("/v1")
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
