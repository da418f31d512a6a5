"""JSON round trips of the data model."""

from __future__ import annotations

import json

import pytest

from spectra_core import OpaqueEntry, SessionManager
from spectra_core.serde import entry_from_dict, entry_to_dict, session_from_dict, session_to_dict
from spectra_core.testing import every_entry_kind

pytestmark = pytest.mark.needs_plugins


async def test_every_entry_kind_round_trips_through_json(manager: SessionManager) -> None:
    s = await manager.create({"model": {"id": "m", "options": {"t": 0.2}}}, user_id="u")
    every_entry_kind(manager, s)
    text = json.dumps(session_to_dict(s))
    back = session_from_dict(json.loads(text))
    assert back == s
    assert json.dumps(session_to_dict(back)) == text
    assert back.unsaved_entries == []


def test_unknown_entry_kind_loads_opaque_and_writes_back_unchanged() -> None:
    raw = {
        "type": "telemetry_v9",
        "id": "e1",
        "parent_id": None,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "payload": {"a": [1, 2]},
        "flag": True,
    }
    entry = entry_from_dict(raw)
    assert isinstance(entry, OpaqueEntry) and entry.kind == "telemetry_v9"
    assert entry_to_dict(entry) == raw


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "x", "parent_id": None, "timestamp": "2026-01-01T00:00:00+00:00"},
        {
            "type": "message",
            "id": "x",
            "parent_id": None,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "message": {"role": "alien"},
        },
    ],
)
def test_malformed_entries_raise(raw: dict[str, object]) -> None:
    with pytest.raises(Exception, match=r"type|role"):
        entry_from_dict(raw)
