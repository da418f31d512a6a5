"""``entry_to_json`` writes exactly what ``dumps(entry_to_dict(...))`` writes, and its
msgspec path is taken for the entries a conversation is made of; ``header_texts`` (the
sqlite save's header columns) writes what ``header_to_dict`` and ``dumps`` write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serde_wire import _entries, entries, timestamps

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    LabelEntry,
    MessageEntry,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from spectra_core._encode import config_json, entry_json
from spectra_core.models import Entry, ForkOrigin, ModelRef, Session, SessionConfig
from spectra_core.serde import (
    converter,
    dumps,
    entry_to_dict,
    entry_to_json,
    header_texts,
    header_to_dict,
)

#: free-form values without floats or integers beyond 64 bits: the msgspec path takes
#: all of them
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
no_float_entries = _entries(plain_values)
AT = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)


@settings(max_examples=500, deadline=None)
@given(entries | no_float_entries)
def test_entry_to_json_is_what_the_cattrs_path_writes(entry: Entry) -> None:
    expected = dumps(entry_to_dict(entry))
    fast = entry_json(entry)
    assert fast is None or fast == expected
    assert entry_to_json(entry) == expected


@settings(max_examples=200, deadline=None)
@given(no_float_entries)
def test_entries_of_a_conversation_take_the_msgspec_path(entry: Entry) -> None:
    if isinstance(entry, MessageEntry | CompactionEntry | LabelEntry):
        assert entry_json(entry) == dumps(entry_to_dict(entry))


def _message(message: Any) -> MessageEntry:
    return MessageEntry(id="e1", parent_id=None, timestamp=AT, message=message)


class _Str(str):
    pass


@pytest.mark.parametrize(
    "entry",
    [
        _message(UserMessage("a lone surrogate \ud800")),  # msgspec refuses, json writes it
        _message(UserMessage(_Str("a str subclass"))),
        _message(AssistantMessage("x", usage=Usage(input_tokens=2**64))),  # beyond 64 bits
        _message(AssistantMessage("x", usage=Usage(input_tokens=True))),  # a bool for an int
        _message(AssistantMessage((ToolCall("c1", "f", {"x": 1.5e-7}),))),  # json: 1.5e-07
        _message(AssistantMessage((ToolCall("c1", "f", {"n": [2**63]}),))),  # beyond 64 bits
        _message(AssistantMessage((ToolCall("c1", "f", {1: "int key"}),))),  # type: ignore[dict-item]
        _message(ToolResultMessage("c1", "f", "ok", is_error=1)),  # type: ignore[arg-type]
        _message(UserMessage((ThinkingContent("t", signature=b"bytes"),))),  # type: ignore[arg-type]
        MessageEntry(id="e1", parent_id=None, timestamp="2026-01-01", message=UserMessage("x")),  # type: ignore[arg-type]
        AuditEntry(id="e1", parent_id=None, timestamp=AT, event_type="run", details={}),
    ],
)
def test_what_only_the_cattrs_path_writes_alike_goes_there(entry: Entry) -> None:
    assert entry_json(entry) is None
    try:
        expected = dumps(entry_to_dict(entry))
    except Exception as exc:  # the cattrs path's own error stays the error
        with pytest.raises(type(exc)):
            entry_to_json(entry)
    else:
        assert entry_to_json(entry) == expected


def test_a_usual_assistant_message_is_written_by_msgspec() -> None:
    entry = _message(
        AssistantMessage(
            (TextContent('quote " and é'), ToolCall("c1", "search", {"q": ["a", 1, None]})),
            model="m",
            provider="p",
            usage=Usage(1, 2, 3, 4),
            stop_reason="tool_use",
        )
    )
    assert entry_json(entry) == dumps(entry_to_dict(entry))


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text()
    | st.just("\ud800 lone surrogate"),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=2).map(tuple)
        | st.dictionaries(st.text() | st.integers(-3, 3), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(json_like)
def test_dumps_writes_what_json_writes(value: Any) -> None:
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _configs(values: st.SearchStrategy[Any]) -> st.SearchStrategy[SessionConfig]:
    objects = st.dictionaries(st.text(max_size=10), values, max_size=3)
    opt_text = st.none() | st.text(max_size=10)
    models = st.none() | st.builds(
        ModelRef, st.text(max_size=10), opt_text, opt_text, opt_text, objects
    )
    return st.builds(SessionConfig, models, opt_text, objects)


#: configs msgspec writes (no floats) and configs only the cattrs path writes alike
plain_configs = _configs(plain_values)
configs = plain_configs | _configs(json_like.filter(lambda v: not isinstance(v, tuple)))


@settings(max_examples=300, deadline=None)
@given(plain_configs)
def test_a_config_without_floats_takes_the_msgspec_path(config: SessionConfig) -> None:
    assert config_json(config) == dumps(converter.unstructure(config, SessionConfig))


@settings(max_examples=300, deadline=None)
@given(
    configs,
    timestamps,
    timestamps,
    st.none() | st.builds(ForkOrigin, st.text(max_size=10), st.none() | st.text(max_size=10)),
)
def test_header_texts_are_what_the_header_dict_writes(
    config: SessionConfig, created: datetime, updated: datetime, forked: ForkOrigin | None
) -> None:
    session = Session(
        id="s1", created_at=created, updated_at=updated, config=config, forked_from=forked
    )
    header = header_to_dict(session)
    origin = header["forked_from"]
    expected = (
        header["created_at"],
        header["updated_at"],
        None if origin is None else dumps(origin),
        dumps(header["config"]),
    )
    assert header_texts(session) == expected


@pytest.mark.parametrize(
    "config",
    [
        SessionConfig(metadata={"temperature": 0.5}),  # json and msgspec write floats apart
        SessionConfig(model=ModelRef("m", options={"top_p": 1e16})),
        SessionConfig(metadata={1: "int key"}),  # type: ignore[dict-item]
        SessionConfig(system_prompt=_Str("a str subclass")),
    ],
)
def test_configs_only_the_cattrs_path_writes_alike_go_there(config: SessionConfig) -> None:
    assert config_json(config) is None
    session = Session(id="s1", created_at=AT, updated_at=AT, config=config)
    assert header_texts(session)[3] == dumps(converter.unstructure(config, SessionConfig))
