"""Text a server sends that UTF-8 cannot store (lone surrogates, from ``\\ud800`` escapes)
arrives as U+FFFD; tool call arguments that are not a storable JSON object are refused
with a clear error, never a RecursionError."""

from __future__ import annotations

import json

import attrs
import pytest
from openai_helpers import ask, collect, final

from spectra_core import (
    AssistantMessage,
    ModelRef,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from spectra_core.agent import ModelRequest, ProviderError, TextDelta, ThinkingDelta
from spectra_openai import OpenAIProvider
from spectra_openai.testing import Completion, FakeOpenAIServer, FakeToolCall, RawStream


async def test_surrogates_in_chunks_arrive_as_replacement_characters(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(reasoning="think \udc00", text="say \ud800 it", chunk_size=3))
    events = await collect(provider, ask())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thinking = "".join(e.thinking for e in events if isinstance(e, ThinkingDelta))
    assert text == "say \ufffd it"
    assert thinking == "think \ufffd"
    message = events[-1].message  # type: ignore[union-attr]
    assert message.content == (ThinkingContent("think \ufffd"), TextContent("say \ufffd it"))


async def test_surrogates_in_tool_call_arguments_and_ids(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    call = FakeToolCall("call\udfff", "get_weather", {"city": "Par\ud800is", "k\udc01": 1})
    server.script(Completion(tool_calls=[call]))
    message = await final(provider, ask())
    assert message.tool_calls == (
        ToolCall("call\ufffd", "get_weather", {"city": "Par\ufffdis", "k\ufffd": 1}),
    )


def _nested(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


@pytest.mark.parametrize(
    ("arguments", "what"),
    [
        (_nested(100_000), "invalid JSON arguments"),
        ('{"x": NaN}', "invalid JSON arguments"),
        ('{"x": -Infinity}', "invalid JSON arguments"),
        (_nested(65), "at most 64 levels deep"),
        ('"just a string"', "should be a JSON object"),
    ],
    ids=["very-deep", "nan", "infinity", "too-deep", "string"],
)
async def test_arguments_that_cannot_be_stored_are_a_clear_error(
    server: FakeOpenAIServer, provider: OpenAIProvider, arguments: str, what: str
) -> None:
    call = FakeToolCall("c1", "get_weather", arguments)
    server.script(Completion(tool_calls=[call], chunk_size=50_000))
    with pytest.raises(ProviderError) as info:
        await collect(provider, ask())
    assert what in str(info.value)
    assert "tool call 0 ('get_weather')" in str(info.value)
    assert not info.value.retryable


async def test_arguments_at_the_depth_limit_are_accepted(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(tool_calls=[FakeToolCall("c1", "get_weather", _nested(64))]))
    message = await final(provider, ask())
    assert json.dumps(message.tool_calls[0].arguments).count("{") == 64


async def test_parsed_arguments_that_cannot_be_encoded_are_a_clear_error(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]},
            }
        ]
    }
    deep: dict[str, object] = {}
    for _ in range(100):
        deep = {"a": deep}
    chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] = deep  # type: ignore[index]
    server.script(RawStream(events=[chunk, {"choices": [{"index": 0, "finish_reason": "stop"}]}]))
    with pytest.raises(ProviderError, match="at most 64 levels deep"):
        await collect(provider, ask())


async def test_surrogates_in_the_history_are_sent_as_replacement_characters(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text="ok"))
    # the models refuse these when built; a history that bypassed them is still cleaned
    with attrs.validators.disabled():
        request = ModelRequest(
            model=ModelRef("test-model", provider="openai"),
            system_prompt="be \ud800 brief",
            messages=(
                UserMessage("hi \udc00"),
                AssistantMessage([ToolCall("c1", "f", {"k": "v\ud801"})]),
                ToolResultMessage("c1", "f", "res \udfff"),
            ),
        )
    assert (await final(provider, request)).text == "ok"
    sent = server.requests[0].json["messages"]
    assert sent[0]["content"] == "be \ufffd brief"
    assert sent[1]["content"] == "hi \ufffd"
    assert json.loads(sent[2]["tool_calls"][0]["function"]["arguments"]) == {"k": "v\ufffd"}
    assert sent[3]["content"] == "res \ufffd"
