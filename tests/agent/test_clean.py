"""spectra_core.agent._clean: text and tool call arguments made safe to store, checked
with hypothesis on arbitrary text (surrogates included) and arbitrary values."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectra_core import AssistantMessage, ImageContent, TextContent, ToolCall, Usage
from spectra_core.agent import (
    MAX_ARGUMENT_DEPTH,
    ProviderError,
    checked_arguments,
    checked_reply,
    parse_arguments,
    replace_surrogates,
)
from spectra_core.agent._clean import describe_exception

#: Any code point, surrogates included (hypothesis leaves them out of st.text() by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(any_text, children, max_size=4)
        | st.tuples(children)
    ),
    max_leaves=20,
)


@given(any_text)
def test_replaced_text_can_always_be_encoded(text: str) -> None:
    safe = replace_surrogates(text)
    safe.encode("utf-8")
    assert len(safe) == len(text)
    assert all(a == b or b == "\ufffd" for a, b in zip(text, safe, strict=True))


@given(any_text, any_text)
def test_replacing_piece_by_piece_equals_replacing_the_whole(a: str, b: str) -> None:
    # so the deltas of a stream, joined, equal the stored message
    assert replace_surrogates(a) + replace_surrogates(b) == replace_surrogates(a + b)


def test_text_without_surrogates_is_returned_as_it_is() -> None:
    text = "déjà vu 🙂"
    assert replace_surrogates(text) is text


@given(json_values)
def test_checked_arguments_are_none_or_storable(value: Any) -> None:
    checked = checked_arguments(value)
    if checked is None:
        return
    encoded = json.dumps(checked, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert json.loads(encoded) == checked  # a round trip gives the same value


@pytest.mark.parametrize(
    "value",
    [[1], "x", None, {1: 2}, {"x": math.nan}, {"x": (1, 2)}, {"x": {1, 2}}, {"x": object()}],
)
def test_values_that_are_not_a_storable_object_are_refused(value: Any) -> None:
    assert checked_arguments(value) is None


def test_the_depth_limit() -> None:
    def nested(levels: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(levels - 1):
            value = {"a": value}
        return value

    assert checked_arguments(nested(MAX_ARGUMENT_DEPTH)) is not None
    assert checked_arguments(nested(MAX_ARGUMENT_DEPTH + 1)) is None
    assert parse_arguments("[" * 100_000) is None  # a RecursionError inside, refused


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [("", {}), ('{"a": 1}', {"a": 1}), ('{"a": "\\ud800"}', {"a": "\ufffd"}), ("[1]", None)],
)
def test_parse_arguments(raw: str, parsed: Any) -> None:
    assert parse_arguments(raw) == parsed


def test_describe_exception_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert describe_exception(Broken()) == "Broken: <Broken whose str() raised>"
    assert describe_exception(ValueError("a\ud800")) == "ValueError: a\ufffd"
    assert describe_exception(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_checked_reply_cleans_and_refuses() -> None:
    # the models refuse these when built; a provider that bypasses their validators
    # (attrs.validators.disabled) must still be caught here, the last line before storage
    with attrs.validators.disabled():
        message = AssistantMessage(
            [TextContent("a\ud800"), ToolCall("i\udc00", "f", {"k": "v\udfff"})],
            model="m\ud800",
            usage=Usage(1, 2),
        )
        bad: list[Any] = [
            "just text",
            AssistantMessage([ImageContent("x", "image/png")]),  # type: ignore[list-item]
            AssistantMessage([TextContent(5)]),  # type: ignore[arg-type]
            AssistantMessage("ok", usage=Usage("1")),  # type: ignore[arg-type]
            AssistantMessage([ToolCall("c", "f", [1])]),  # type: ignore[arg-type]
        ]
    assert checked_reply(message) == AssistantMessage(
        [TextContent("a\ufffd"), ToolCall("i\ufffd", "f", {"k": "v\ufffd"})],
        model="m\ufffd",
        usage=Usage(1, 2),
    )
    for reply in bad:
        with pytest.raises(ProviderError) as info:
            checked_reply(reply, provider="p")
        assert info.value.provider == "p" and not info.value.retryable
