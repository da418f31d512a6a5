"""The msgspec decoding of entries through the structs generated from the models
(``entry_from_json``, ``entries_from_json_lines``) agrees with the cattrs path
(``entry_from_dict(json.loads(...))``) on every input: entries spectra writes, and the
same entries damaged."""

from __future__ import annotations

import gc
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    CustomEntry,
    CustomMessageEntry,
    ImageContent,
    LabelEntry,
    MessageEntry,
    ModelChangeEntry,
    ModelRef,
    OpaqueEntry,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from spectra_core.models import Entry
from spectra_core.serde import (
    bulk_decoding,
    dumps,
    entries_from_json_lines,
    entry_from_dict,
    entry_from_json,
    entry_records_from_json_lines,
    entry_to_dict,
    loads,
)

text = st.text(max_size=20)
ids = st.text(alphabet="abcdef0123456789", min_size=1, max_size=12)
opt_text = st.none() | text
counts = st.integers(min_value=0, max_value=2**40)


def _json_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | floats | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=8,
    )


timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2), timezones=st.sampled_from([UTC, timezone(timedelta(hours=5.5))])
) | st.datetimes(min_value=datetime(1970, 1, 2))


def _entries(json_values: st.SearchStrategy[Any]) -> st.SearchStrategy[Entry]:
    """Entries of every kind; free-form data (tool arguments, details...) from ``json_values``."""
    json_objects = st.dictionaries(text, json_values, max_size=3)
    texts, images = st.builds(TextContent, text), st.builds(ImageContent, text, text)
    user_blocks = st.lists(texts | images, max_size=3).map(tuple)
    assistant_blocks = st.lists(
        texts
        | st.builds(ThinkingContent, text, opt_text)
        | st.builds(ToolCall, ids, text, json_objects),
        max_size=3,
    ).map(tuple)
    usages = st.none() | st.builds(Usage, counts, counts, counts, counts)
    messages = st.one_of(
        st.builds(UserMessage, user_blocks),
        st.builds(
            AssistantMessage, assistant_blocks, opt_text, opt_text, usages, opt_text, opt_text
        ),
        st.builds(ToolResultMessage, ids, text, user_blocks, st.booleans()),
    )
    models = st.builds(ModelRef, text, opt_text, opt_text, opt_text, json_objects)
    base = {"id": ids, "parent_id": st.none() | ids, "timestamp": timestamps}
    return st.one_of(
        st.builds(MessageEntry, message=messages, **base),
        st.builds(AuditEntry, event_type=text, details=json_objects, **base),
        st.builds(ModelChangeEntry, model=models, **base),
        st.builds(CustomEntry, custom_type=text, data=json_values, **base),
        st.builds(
            CustomMessageEntry,
            custom_type=text,
            content=user_blocks,
            display=st.booleans(),
            details=json_values,
            **base,
        ),
        st.builds(
            CompactionEntry, summary=text, first_kept_entry_id=ids, tokens_before=counts, **base
        ),
        st.builds(LabelEntry, target_id=ids, label=opt_text, **base),
    )


#: any entry the models accept (free-form values hold finite floats only)
entries = _entries(_json_values(st.floats(allow_nan=False, allow_infinity=False)))
finite_entries = entries


def _reference(raw: str) -> Entry | type[Exception]:
    """What the cattrs path makes of ``raw``: the entry, or the kind of its error."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            return ValueError
        return entry_from_dict(obj)
    except ValueError:
        return ValueError


def _fast(raw: str) -> Entry | type[Exception]:
    try:
        return entry_from_json(raw)
    except ValueError:
        return ValueError


@settings(max_examples=400, deadline=None)
@given(entries)
def test_written_entries_decode_to_themselves(entry: Entry) -> None:
    raw = dumps(entry_to_dict(entry))
    assert entry_from_json(raw) == entry
    assert entry_from_json(raw.encode()) == entry
    assert _reference(raw) == entry


def _damage(data: Any, path: list[Any], change: str, value: Any) -> Any:
    """A copy of ``data`` with the dict or list found along ``path`` changed."""
    if not path:
        if change == "drop" and isinstance(data, dict) and data:
            data = dict(data)
            data.pop(sorted(data)[len(data) // 2])
        elif change == "add" and isinstance(data, dict):
            data = {**data, "zz_unknown": value}
        elif change == "set" and isinstance(data, dict) and data:
            data = {**data, sorted(data)[len(data) // 2]: value}
        elif change == "set":
            data = value
        return data
    key, rest = path[0], path[1:]
    if isinstance(data, dict) and data:
        k = sorted(data)[key % len(data)]
        return {**data, k: _damage(data[k], rest, change, value)}
    if isinstance(data, list) and data:
        i = key % len(data)
        return [*data[:i], _damage(data[i], rest, change, value), *data[i + 1 :]]
    return _damage(data, [], change, value)


damage_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.just(1.0),
    st.just("2026-01-01T00:00:00+00:00"),
    st.just("not a time"),
    st.sampled_from(["text", "user", "assistant", "message", "audit", "label", "martian"]),
    text,
    st.lists(st.integers(), max_size=2),
    st.just({}),
)


@settings(max_examples=600, deadline=None)
@given(
    entries,
    st.lists(st.integers(0, 7), max_size=4),
    st.sampled_from(["drop", "add", "set"]),
    damage_values,
)
def test_damaged_entries_decode_as_the_cattrs_path_does(
    entry: Entry, path: list[int], change: str, value: Any
) -> None:
    damaged = _damage(entry_to_dict(entry), path, change, value)
    raw = json.dumps(damaged)
    assert _fast(raw) == _reference(raw)


def test_an_entry_of_an_unknown_kind_takes_the_cattrs_path() -> None:
    raw = (
        '{"type":"telemetry_v9","id":"e1","parent_id":null,'
        '"timestamp":"2026-01-01T00:00:00+00:00","x":1}'
    )
    entry = entry_from_json(raw)
    assert isinstance(entry, OpaqueEntry) and entry.data == {"x": 1}


@pytest.mark.parametrize("raw", ["", "{", "[1, 2]", '"entry"', "null", "{}"])
def test_text_that_is_no_entry_raises_value_error(raw: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each raises its own ValueError
        entry_from_json(raw)


@settings(max_examples=100, deadline=None)
@given(st.lists(finite_entries, max_size=6))
def test_entries_from_json_lines_is_entry_from_json_per_line(batch: list[Entry]) -> None:
    raw = "\n".join(dumps(entry_to_dict(e)) for e in batch).encode()
    assert entries_from_json_lines(raw) == batch
    wrapped = b"".join(
        b'{"@":[1,2,3],"e":' + dumps(entry_to_dict(e)).encode() + b'}\n{"commit":{}}\n'
        for e in batch
    )
    records = entry_records_from_json_lines(memoryview(wrapped), "e")
    assert records == [x for e in batch for x in (e, None)]


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"telemetry_v9","id":"e1","parent_id":null,"timestamp":"2026-01-01T00:00:00"}',
        b'{"type":"label","id":"e1","parent_id":null,"timestamp":"yesterday","target_id":"x",'
        b'"label":null}',
        b'{"type":"label","id":7,"parent_id":null,"timestamp":"2026-01-01T00:00:00",'
        b'"target_id":"x","label":null}',
        b"[]",
        b"{",
    ],
)
def test_a_line_not_written_as_spectra_writes_fails_the_whole_batch(line: bytes) -> None:
    good = dumps(
        entry_to_dict(
            LabelEntry(
                id="a", parent_id=None, timestamp=datetime.now(UTC), target_id="b", label=None
            )
        )
    ).encode()
    with pytest.raises(ValueError, match="not every line"):
        entries_from_json_lines(good + b"\n" + line + b"\n" + good)


def test_loads_reads_what_json_writes() -> None:
    for value in [float("inf"), -float("inf"), 10**30, 1e308, [1, "é", None]]:
        assert loads(json.dumps(value)) == value
    assert math.isnan(loads("NaN"))
    assert loads(b'{"a": 1}') == {"a": 1}
    with pytest.raises(json.JSONDecodeError):
        loads("{nope")


def test_bulk_decoding_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with bulk_decoding():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), bulk_decoding():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with bulk_decoding():
            pass
        assert not gc.isenabled()  # it was off: it stays off
    finally:
        gc.enable()


def test_a_field_added_to_a_model_is_decoded_with_it() -> None:
    """The structs are derived from the attrs classes: no hand-written mirror to update."""
    import attrs

    from spectra_core._codec import _struct

    for cls in (MessageEntry, AuditEntry, UserMessage, AssistantMessage, ToolCall):
        names = {f.name for f in attrs.fields(cls)}
        assert set(_struct(cls).__struct_fields__) == names, cls
