"""The JSON text of entries and headers: ``entry_to_json`` is ``dumps(entry_to_dict(...))``
and reads back equal; ``dumps`` refuses what is not JSON; ``header_texts`` (the sqlite
save's header columns) writes what ``header_to_dict`` and ``dumps`` write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_codec import entries, timestamps

from spectra_core import StoreError
from spectra_core.models import Entry, ForkOrigin, ModelRef, Session, SessionConfig
from spectra_core.serde import (
    converter,
    dumps,
    entry_from_json,
    entry_to_dict,
    entry_to_json,
    header_texts,
    header_to_dict,
    loads,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(entries)
def test_entry_to_json_is_dumps_of_the_dict_and_reads_back(entry: Entry) -> None:
    text = entry_to_json(entry)
    assert text == dumps(entry_to_dict(entry))
    assert loads(text) == entry_to_dict(entry)
    assert entry_from_json(text) == entry


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_dumps_reads_back_with_the_same_types(value: Any) -> None:
    back = loads(dumps(value))
    assert back == value
    assert repr(back) == repr(value)  # 1 stays 1, 1.0 stays 1.0, True stays True


@pytest.mark.parametrize("value", [{"x": object()}, "lone \ud800", {1j: 1}])
def test_dumps_refuses_what_is_not_json(value: Any) -> None:
    with pytest.raises(StoreError, match="not JSON-serializable"):
        dumps(value)


def _configs(values: st.SearchStrategy[Any]) -> st.SearchStrategy[SessionConfig]:
    objects = st.dictionaries(st.text(max_size=10), values, max_size=3)
    opt_text = st.none() | st.text(max_size=10)
    models = st.none() | st.builds(
        ModelRef, st.text(max_size=10), opt_text, opt_text, opt_text, objects
    )
    return st.builds(SessionConfig, models, opt_text, objects)


@settings(max_examples=300, deadline=None)
@given(
    _configs(json_values),
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
    assert header["config"] == converter.unstructure(config, SessionConfig)
