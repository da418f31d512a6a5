"""What the server receives: our messages, tools and settings as an OpenAI request."""

from __future__ import annotations

import pytest
from openai_helpers import ask, final

from spectra_core import (
    AssistantMessage,
    ImageContent,
    ModelRef,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from spectra_core.agent import ModelRequest, ToolSpec
from spectra_openai import OpenAIProvider
from spectra_openai.testing import Completion, FakeOpenAIServer

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


async def test_a_whole_conversation(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    request = ModelRequest(
        model=ModelRef("gpt-4o-mini", provider="openai"),
        system_prompt="You are terse.",
        messages=(
            UserMessage("Weather in Paris and Rome?"),
            AssistantMessage(
                (
                    ThinkingContent("two cities"),
                    TextContent("Checking."),
                    ToolCall("call_1", "get_weather", {"city": "Paris"}),
                    ToolCall("call_2", "get_weather", {"city": "Rome"}),
                )
            ),
            ToolResultMessage("call_1", "get_weather", "Sunny, 24C"),
            ToolResultMessage("call_2", "get_weather", "boom", is_error=True),
            AssistantMessage("Paris is sunny; Rome failed."),
            UserMessage("Thanks"),
        ),
        tools=(WEATHER, ToolSpec("now")),
        temperature=0.2,
        max_tokens=256,
    )
    server.script(Completion(text="ok"))
    await final(provider, request)
    (received,) = server.requests
    assert received.method == "POST"
    assert received.path == "/v1/chat/completions"
    body = received.json
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 256
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "boom"},
        {"role": "assistant", "content": "Paris is sunny; Rome failed."},
        {"role": "user", "content": "Thanks"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "now",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]


async def test_minimal_request_sends_no_optional_fields(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text="ok"))
    await final(provider, ask("hello"))
    body = server.requests[0].json
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    for key in ("tools", "temperature", "max_tokens"):
        assert key not in body


async def test_assistant_with_only_tool_calls_has_null_content(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    request = ModelRequest(
        model=ModelRef("m"),
        messages=(UserMessage("time?"), AssistantMessage((ToolCall("c", "now"),))),
    )
    server.script(Completion(text="ok"))
    await final(provider, request)
    assistant = server.requests[0].json["messages"][1]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["function"] == {"name": "now", "arguments": "{}"}


async def test_images_as_data_urls(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    request = ModelRequest(
        model=ModelRef("vision"),
        messages=(
            UserMessage((TextContent("What is this?"), ImageContent("aGVsbG8=", "image/png"))),
            AssistantMessage((ToolCall("c1", "snap"),)),
            ToolResultMessage("c1", "snap", (ImageContent("anBn", "image/jpeg"),)),
        ),
    )
    server.script(Completion(text="a cat"))
    await final(provider, request)
    messages = server.requests[0].json["messages"]
    assert messages[0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
        ],
    }
    assert messages[2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "[1 image(s) attached below]",
    }
    assert messages[3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Images returned by the tools:"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,anBn"}},
        ],
    }
    assert len(messages) == 4


async def test_configured_model_wins_over_request(server: FakeOpenAIServer) -> None:
    provider = server.provider(model="configured-model")
    server.script(Completion(text="ok"))
    try:
        msg = await final(provider, ask(model="from-request"))
    finally:
        await provider.aclose()
    assert server.requests[0].json["model"] == "configured-model"
    assert msg.model == "configured-model"


async def test_headers_key_and_organization(server: FakeOpenAIServer) -> None:
    provider = server.provider(
        api_key="sk-secret", organization="org-42", default_headers={"X-Tenant": "acme"}
    )
    server.script(Completion(text="ok"))
    try:
        await final(provider, ask())
    finally:
        await provider.aclose()
    headers = server.requests[0].headers
    assert headers["authorization"] == "Bearer sk-secret"
    assert headers["openai-organization"] == "org-42"
    assert headers["x-tenant"] == "acme"


@pytest.mark.parametrize("env_key", [None, "sk-from-env"])
async def test_local_server_without_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, env_key: str | None
) -> None:
    if env_key is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", env_key)
    provider = OpenAIProvider(base_url=server.url)
    server.script(Completion(text="ok"))
    try:
        await final(provider, ask())
    finally:
        await provider.aclose()
    expected = env_key or "not-needed"
    assert server.requests[0].headers["authorization"] == f"Bearer {expected}"
