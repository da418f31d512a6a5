"""spectra_core.engine._partial: the views of a streamed message share one append-only
builder and each builds exactly the message of its first deltas (checked with hypothesis
against a reference that copies, as the loop used to)."""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from spectra_core import AssistantMessage, TextContent, ThinkingContent, ToolCall
from spectra_core.agent import TextDelta, ThinkingDelta, ToolCallDelta
from spectra_core.engine._partial import MessageBuilder, PartialMessage, StreamDelta

deltas = st.lists(
    st.one_of(
        st.builds(TextDelta, st.text(max_size=5)),
        st.builds(ThinkingDelta, st.text(max_size=5)),
        st.builds(
            ToolCallDelta,
            st.integers(0, 2),
            id=st.none() | st.sampled_from(["c1", "c2"]),
            name=st.none() | st.sampled_from(["f", "g"]),
            arguments_delta=st.sampled_from(["", "{", '"a"', ": 1", "}", "[1]"]),
        ),
    ),
    max_size=30,
)


def reference(prefix: list[StreamDelta]) -> AssistantMessage:
    """The message of ``prefix``, built the obvious way (a full copy)."""
    text = "".join(d.text for d in prefix if isinstance(d, TextDelta))
    thinking = "".join(d.thinking for d in prefix if isinstance(d, ThinkingDelta))
    calls: dict[int, list[Any]] = {}
    for d in prefix:
        if isinstance(d, ToolCallDelta):
            call = calls.setdefault(d.index, [None, None, ""])
            call[0] = d.id or call[0]
            call[1] = d.name or call[1]
            call[2] += d.arguments_delta
    blocks: list[Any] = []
    if any(isinstance(d, ThinkingDelta) for d in prefix):
        blocks.append(ThinkingContent(thinking))
    if any(isinstance(d, TextDelta) for d in prefix):
        blocks.append(TextContent(text))
    for call_id, name, raw in calls.values():
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            args = None
        if not isinstance(args, dict):
            args = {"_partial_arguments": raw}
        blocks.append(ToolCall(call_id or "", name or "", args))
    return AssistantMessage(tuple(blocks), model="m")


@given(deltas)
def test_each_view_builds_the_message_of_its_deltas(stream: list[StreamDelta]) -> None:
    builder = MessageBuilder(model="m")
    views = [builder.view()] + [builder.add(d) for d in stream]
    for count, view in enumerate(views):
        assert view.builder is builder and view.count == count
        assert view.message() == reference(stream[:count])
    assert builder.build(stop_reason="aborted") == attrs.evolve(
        reference(stream), stop_reason="aborted"
    )


def test_a_view_holds_the_shared_builder_and_a_count_only() -> None:
    assert [f.name for f in attrs.fields(PartialMessage)] == ["builder", "count"]
    builder = MessageBuilder()
    first = builder.add(TextDelta("a"))
    builder.add(TextDelta("b"))
    assert first.message().text == "a"  # later deltas do not change an earlier view
    assert repr(first) == "PartialMessage(deltas=1)"
    assert first == PartialMessage(builder, 1) and first != PartialMessage(MessageBuilder(), 1)
