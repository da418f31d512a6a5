"""Failures become ProviderError: retryable or not, with Retry-After and a clear message."""

from __future__ import annotations

import socket
import threading
from email.utils import format_datetime

import pytest
from openai_helpers import ask, collect

from spectra_core.agent import ProviderError, TextDelta
from spectra_core.clock import utc_from_timestamp
from spectra_core.testing import FakeClock
from spectra_openai import OpenAIProvider, parse_retry_after
from spectra_openai.testing import Completion, ErrorReply, FakeOpenAIServer, FakeToolCall, RawStream


async def fail(provider: OpenAIProvider, model: str = "test-model") -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await collect(provider, ask(model=model))
    assert info.value.provider == "openai"
    return info.value


async def test_429_with_retry_after_seconds(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(ErrorReply(429, "Rate limit reached", headers={"Retry-After": "7"}))
    err = await fail(provider)
    assert err.retryable
    assert err.status_code == 429
    assert err.retry_after == 7.0
    assert "Rate limit reached" in str(err)
    assert len(server.requests) == 1  # the SDK did not retry on its own


async def test_429_with_retry_after_ms(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.script(ErrorReply(429, headers={"retry-after-ms": "1500", "Retry-After": "9"}))
    assert (await fail(provider)).retry_after == 1.5


async def test_429_with_retry_after_http_date(server: FakeOpenAIServer) -> None:
    clock = FakeClock()
    when = format_datetime(utc_from_timestamp(clock.time() + 30), usegmt=True)
    server.script(ErrorReply(429, headers={"Retry-After": when}))
    provider = server.provider(clock=clock)
    try:
        err = await fail(provider)
    finally:
        await provider.aclose()
    assert err.retry_after == 30.0


async def test_429_without_retry_after(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.script(ErrorReply(429))
    err = await fail(provider)
    assert err.retryable
    assert err.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_are_retryable(
    server: FakeOpenAIServer, provider: OpenAIProvider, status: int
) -> None:
    server.script(ErrorReply(status, "upstream trouble", headers={"Retry-After": "3"}))
    err = await fail(provider)
    assert err.retryable
    assert err.status_code == status
    assert err.retry_after == 3.0
    assert "upstream trouble" in str(err)


async def test_500_then_success(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    """What the engine's retry does: the next call simply works."""
    server.script(ErrorReply(500), Completion(text="fine"))
    assert (await fail(provider)).retryable
    events = await collect(provider, ask())
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("fine")]


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (400, "check the model options, messages and tools"),
        (401, "check api_key"),
        (403, "check api_key, organization and model"),
        (404, "check the model name and base_url"),
        (422, "check the model options, messages and tools"),
    ],
)
async def test_client_errors_are_not_retryable(
    server: FakeOpenAIServer, provider: OpenAIProvider, status: int, hint: str
) -> None:
    server.script(ErrorReply(status, "server says no", headers={"Retry-After": "5"}))
    err = await fail(provider, model="gpt-x")
    assert not err.retryable
    assert err.retry_after is None
    assert err.status_code == status
    assert hint in str(err)
    assert "server says no" in str(err)
    assert "'gpt-x'" in str(err)
    assert server.url in str(err)


async def test_error_body_in_another_shape(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(ErrorReply(404, body={"detail": "Not Found"}))
    assert "Not Found" in str(await fail(provider))


async def test_connection_dropped_mid_stream(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text="abcdefghijklmnop", chunk_size=2, stop_after=4, abort=True))
    deltas: list[str] = []

    async def consume() -> None:
        async for event in provider.stream(ask()):
            assert isinstance(event, TextDelta)
            deltas.append(event.text)

    with pytest.raises(ProviderError) as info:
        await consume()
    assert deltas == ["ab", "cd", "ef"]  # chunk 1 is the role chunk
    assert info.value.retryable
    assert "broke off after 4 chunk(s)" in str(info.value)
    assert "incomplete" in str(info.value)


async def test_stream_ends_without_finish_reason(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(Completion(text="abcdefgh", chunk_size=2, stop_after=3))
    err = await fail(provider)
    assert err.retryable
    assert "without a finish_reason" in str(err)


async def test_done_without_finish_reason(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(RawStream(events=[{"choices": [{"index": 0, "delta": {"content": "hi"}}]}]))
    assert "without a finish_reason" in str(await fail(provider))


async def test_finish_reason_then_cut_before_usage_is_fine(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    # role, "ok", finish chunk; the usage chunk and [DONE] never come
    server.script(Completion(text="ok", stop_after=3))
    events = await collect(provider, ask())
    assert events[-1].message.stop_reason == "stop"  # type: ignore[union-attr]
    assert events[-1].message.usage is None  # type: ignore[union-attr]


async def test_malformed_json_chunk(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    server.script(
        RawStream(events=[{"choices": [{"index": 0, "delta": {"content": "a"}}]}, "{not json"])
    )
    err = await fail(provider)
    assert not err.retryable
    assert "malformed stream" in str(err)
    assert "chunk 2 is not valid JSON" in str(err)


@pytest.mark.parametrize(
    ("event", "what"),
    [
        ("42", "chunk 1 should be an object"),
        ({"choices": "nope"}, "chunk 1.choices should be a list"),
        ({"choices": [{"index": 0, "delta": "x"}]}, "chunk 1.choices[0].delta should be an object"),
        ({"choices": [{"index": 0, "delta": {"content": 5}}]}, "delta.content should be a string"),
        (
            {"choices": [{"index": 0, "delta": {"tool_calls": {"a": 1}}}]},
            "tool_calls should be a list",
        ),
        ({"choices": [], "usage": {"prompt_tokens": "many"}}, "prompt_tokens should be an integer"),
    ],
)
async def test_chunks_of_the_wrong_shape(
    server: FakeOpenAIServer, provider: OpenAIProvider, event: object, what: str
) -> None:
    server.script(RawStream(events=[event]))  # type: ignore[list-item]
    err = await fail(provider)
    assert not err.retryable
    assert what in str(err)


async def test_error_object_inside_the_stream(
    server: FakeOpenAIServer, provider: OpenAIProvider
) -> None:
    server.script(RawStream(events=[{"error": {"message": "model crashed", "code": 500}}]))
    err = await fail(provider)
    assert "model crashed" in str(err)
    assert not err.retryable


@pytest.mark.parametrize(
    ("arguments", "what"),
    [
        ('{"city": "Par', "invalid JSON arguments"),
        ("[1, 2]", "should be a JSON object"),
    ],
)
async def test_bad_tool_call_arguments(
    server: FakeOpenAIServer, provider: OpenAIProvider, arguments: str, what: str
) -> None:
    server.script(Completion(tool_calls=[FakeToolCall("c1", "get_weather", arguments)]))
    err = await fail(provider)
    assert not err.retryable
    assert what in str(err)
    assert "'get_weather'" in str(err)


async def test_tool_call_without_name(server: FakeOpenAIServer, provider: OpenAIProvider) -> None:
    delta = {"tool_calls": [{"index": 0, "id": "c", "function": {"arguments": "{}"}}]}
    server.script(
        RawStream(
            events=[
                {"choices": [{"index": 0, "delta": delta}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            ]
        )
    )
    assert "tool call 0 has no function name" in str(await fail(provider))


async def test_nothing_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
    try:
        err = await fail(provider)
    finally:
        await provider.aclose()
    assert err.retryable
    assert err.status_code is None
    assert "could not connect" in str(err)
    assert "check base_url" in str(err)


async def test_read_timeout(server: FakeOpenAIServer) -> None:
    gate = threading.Event()
    server.script(Completion(text="slow", gate=gate, gate_after=1))
    provider = server.provider(timeout=0.2)
    try:
        err = await fail(provider)
    finally:
        gate.set()
        await provider.aclose()
    assert err.retryable
    assert "timed out after 1 chunk(s)" in str(err)


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    date = format_datetime(utc_from_timestamp(now + 120), usegmt=True)
    assert parse_retry_after({"Retry-After": "2.5"}, now) == 2.5
    assert parse_retry_after({"retry-after": date}, now) == 120.0
    assert parse_retry_after({"Retry-After-Ms": "250"}, now) == 0.25
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "4"}, now) == 4.0
    assert parse_retry_after({"Retry-After": "soon"}, now) is None
    assert parse_retry_after({"Retry-After": "-3"}, now) == 0.0
    past = format_datetime(utc_from_timestamp(now - 60), usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now) == 0.0
    assert parse_retry_after({}, now) is None
