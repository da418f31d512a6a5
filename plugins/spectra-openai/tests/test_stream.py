"""Streaming through the real SDK against the fake server: deltas, final message, usage."""

from __future__ import annotations

import asyncio
import threading

import pytest
from openai_helpers import ask, collect, final

from spectra_core import TextContent, ThinkingContent, ToolCall, Usage
from spectra_core.agent import (
    ModelProvider,
    ProviderDone,
    ProviderEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)
from spectra_openai import OpenAIProvider
from spectra_openai.testing import Completion, FakeOpenAIServer, FakeToolCall, RawStream

TEXT = "The quick brown fox jumps over the lazy dog, twice over."


def chunk(delta: dict[str, object] | None = None, finish: str | None = None) -> dict[str, object]:
    return {
        "id": "x",
        "model": "raw-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }


def test_is_a_model_provider(provider: OpenAIProvider) -> None:
    assert isinstance(provider, ModelProvider)


async def test_text_split_over_many_chunks(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text=TEXT, chunk_size=3, usage=(12, 34)))
    events = await collect(provider, ask())
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == len(range(0, len(TEXT), 3))
    assert "".join(d.text for d in deltas) == TEXT
    assert isinstance(events[-1], ProviderDone)
    msg = events[-1].message
    assert msg.content == (TextContent(TEXT),)
    assert msg.model == "test-model"
    assert msg.provider == "openai"
    assert msg.stop_reason == "stop"
    assert msg.usage == Usage(input_tokens=12, output_tokens=34)


async def test_usage_with_cached_tokens(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.script(Completion(text="ok", usage=(100, 7), cached_tokens=64))
    msg = await final(provider, ask())
    assert msg.usage == Usage(input_tokens=100, output_tokens=7, cache_read_tokens=64)


async def test_no_usage_chunk_leaves_usage_empty(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text="ok", usage=None))
    assert (await final(provider, ask())).usage is None


async def test_reasoning_deltas_become_thinking(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(reasoning="Let me think about it.", text="42", chunk_size=5))
    events = await collect(provider, ask())
    thinking = [e.thinking for e in events if isinstance(e, ThinkingDelta)]
    assert len(thinking) == 5
    assert "".join(thinking) == "Let me think about it."
    # reasoning arrives before the answer
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ThinkingDelta) for e in events[:first_text])
    assert isinstance(events[-1], ProviderDone)
    assert events[-1].message.content == (
        ThinkingContent("Let me think about it."),
        TextContent("42"),
    )


async def test_reasoning_key_of_ollama(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.script(
        RawStream(
            events=[
                chunk({"reasoning": "hmm"}),
                chunk({"content": "yes"}),
                chunk({}, "stop"),
            ]
        )
    )
    msg = await final(provider, ask())
    assert msg.content == (ThinkingContent("hmm"), TextContent("yes"))
    assert msg.model == "raw-model"


async def test_two_parallel_tool_calls(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    calls = [
        FakeToolCall("call_a", "get_weather", {"city": "Paris", "units": "metric"}),
        FakeToolCall("call_b", "get_time", {"tz": "Europe/Paris"}),
    ]
    server.script(Completion(text="Checking.", tool_calls=calls, chunk_size=5))
    events = await collect(provider, ask())
    tool_deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    # the id and name come once, first; the arguments in several pieces
    for index, call in enumerate(calls):
        mine = [d for d in tool_deltas if d.index == index]
        assert mine[0].id == call.id
        assert mine[0].name == call.name
        assert all(d.id is None and d.name is None for d in mine[1:])
        assert len([d for d in mine if d.arguments_delta]) > 2
        assert "".join(d.arguments_delta for d in mine) == call.arguments_json
    assert isinstance(events[-1], ProviderDone)
    msg = events[-1].message
    assert msg.text == "Checking."
    assert msg.tool_calls == (
        ToolCall("call_a", "get_weather", {"city": "Paris", "units": "metric"}),
        ToolCall("call_b", "get_time", {"tz": "Europe/Paris"}),
    )
    assert msg.stop_reason == "tool_use"


async def test_tool_call_without_arguments(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(tool_calls=[FakeToolCall("c1", "now", "")]))
    msg = await final(provider, ask())
    assert msg.tool_calls == (ToolCall("c1", "now", {}),)


async def test_whole_tool_call_in_one_chunk_without_id(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    """Some local servers send the call at once, with parsed arguments and no id."""
    server.script(
        RawStream(
            events=[
                chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "add", "arguments": {"a": 1}}}
                        ]
                    }
                ),
                chunk({}, "tool_calls"),
            ]
        )
    )
    msg = await final(provider, ask())
    (call,) = msg.tool_calls
    assert call.name == "add"
    assert call.arguments == {"a": 1}
    assert call.id.startswith("call_")


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_use"),
        ("content_filter", "content_filter"),
        ("something_new", "something_new"),
    ],
)
async def test_stop_reasons(
    server: FakeOpenAIServer, provider: OpenAIProvider, finish: str, stop: str
) -> None:
    server.script(Completion(text="x", finish_reason=finish))
    assert (await final(provider, ask())).stop_reason == stop


async def test_model_reported_by_server(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.script(Completion(text="x", model="served-model-v2"))
    assert (await final(provider, ask(model="alias"))).model == "served-model-v2"


async def test_other_choices_are_ignored(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    both = {
        "model": "m",
        "choices": [
            {"index": 0, "delta": {"content": "mine"}, "finish_reason": None},
            {"index": 1, "delta": {"content": "OTHER"}, "finish_reason": None},
        ],
    }
    server.script(RawStream(events=[both, chunk({}, "stop")]))
    assert (await final(provider, ask())).text == "mine"


async def test_consumer_stopping_early_releases_the_stream(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text=TEXT, chunk_size=2), Completion(text="again"))
    stream = provider.stream(ask())
    first = await anext(stream)
    assert first == TextDelta(TEXT[:2])
    await stream.aclose()  # type: ignore[attr-defined]
    assert (await final(provider, ask())).text == "again"
    assert len(server.requests) == 2


async def test_given_client_is_not_closed(server: FakeOpenAIServer) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0)
    server.script(Completion(text="one"), Completion(text="two"))
    p = OpenAIProvider(client=client)
    assert (await final(p, ask())).text == "one"
    await p.aclose()
    assert (await final(OpenAIProvider(client=client), ask())).text == "two"
    await client.close()


async def test_cancelling_a_waiting_stream(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    """An abort (task cancelled while the model is silent) is not turned into an error."""
    gate = threading.Event()
    server.script(Completion(text="abcdef", chunk_size=2, gate=gate, gate_after=2))
    first_delta = asyncio.Event()
    seen: list[ProviderEvent] = []

    async def consume() -> None:
        async for event in provider.stream(ask()):
            seen.append(event)
            first_delta.set()

    task = asyncio.create_task(consume())
    await first_delta.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    assert seen == [TextDelta("ab")]
    server.script(Completion(text="next"))
    assert (await final(provider, ask())).text == "next"
