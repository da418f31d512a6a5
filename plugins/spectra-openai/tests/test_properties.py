"""Whatever way an answer is cut into chunks, the deltas add up to the final message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_core import TextContent, ThinkingContent, ToolCall
from spectra_core.agent import TextDelta, ThinkingDelta, ToolCallDelta
from spectra_openai._stream import StreamState
from spectra_openai.testing import Completion, FakeToolCall

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(max_size=80),
    reasoning=st.text(max_size=40),
    calls=st.lists(st.tuples(names, arguments), max_size=3),
    chunk_size=st.integers(min_value=1, max_value=17),
)
def test_deltas_add_up(
    text: str,
    reasoning: str,
    calls: list[tuple[str, dict[str, Any]]],
    chunk_size: int,
) -> None:
    tool_calls = [FakeToolCall(f"call_{n}", name, args) for n, (name, args) in enumerate(calls)]
    completion = Completion(
        text=text, reasoning=reasoning, tool_calls=tool_calls, chunk_size=chunk_size
    )
    # through JSON, as on the wire
    chunks = [json.loads(json.dumps(c)) for c in completion.chunks("m")]
    state = StreamState(model="m")
    events = [e for c in chunks for e in state.feed(c)]
    message = state.message()

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
    assert "".join(e.thinking for e in events if isinstance(e, ThinkingDelta)) == reasoning
    for n, (name, args) in enumerate(calls):
        mine = [e for e in events if isinstance(e, ToolCallDelta) and e.index == n]
        assert [(e.id, e.name) for e in mine if e.id or e.name] == [(f"call_{n}", name)]
        assert json.loads("".join(e.arguments_delta for e in mine)) == args

    expected: list[Any] = []
    if reasoning:
        expected.append(ThinkingContent(reasoning))
    if text:
        expected.append(TextContent(text))
    expected += [ToolCall(f"call_{n}", name, args) for n, (name, args) in enumerate(calls)]
    assert message.content == tuple(expected)
    assert message.stop_reason == ("tool_use" if calls else "stop")
    assert message.usage is not None
    assert message.usage.total_tokens == 15
