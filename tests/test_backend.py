"""spectra_core.backend: a store written from it alone passes the conformance suite, and
its helpers (the save contract, building loaded sessions, the after-fork reset)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from spectra_core.backend import (
    ConflictError,
    Entry,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFoundError,
    SessionPage,
    SessionStore,
    StoreBase,
    page_of,
    prepare_save,
    reset_after_fork,
    session_from_stored,
    trim_to_active_branch,
    validate_id,
)
from spectra_core.errors import InvalidArgumentError
from spectra_core.testing import SessionStoreConformance, StoreRecipe, run_in_forked_child

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@attrs.define
class _Row:
    header: dict[str, Any]
    entries: list[Entry]


class DictStore(StoreBase):
    """The smallest store: what docs/writing-a-plugin.md shows, on a dict."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    async def load(self, session_id: str) -> Session:
        row = self._rows.get(validate_id(session_id))
        if row is None:
            raise SessionNotFoundError(session_id)
        return session_from_stored(row.header, row.entries)

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        return trim_to_active_branch(await self.load(session_id), tail)

    async def save(self, session: Session) -> None:
        pending = prepare_save(session)
        row = self._rows.get(session.id)
        if row is None:
            pending.check(None, None)
            self._rows[session.id] = row = _Row({}, [])
        else:
            pending.check(row.header["version"], row.header["incarnation"])
        row.header = pending.header()
        row.entries.extend(pending.new_entries)
        pending.done()

    async def delete(self, session_id: str) -> None:
        if self._rows.pop(validate_id(session_id), None) is None:
            raise SessionNotFoundError(session_id)

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        infos = (SessionInfo.of(session_from_stored(r.header)) for r in self._rows.values())
        return page_of(infos, filter or SessionFilter())


class TestDictStore(SessionStoreConformance):
    async def make_store(self, workdir: Path, namespace: str) -> SessionStore:
        return DictStore()


def _session(**kw: Any) -> Session:
    return Session(id="s1", created_at=T0, updated_at=T0, **kw)


def test_a_creation_gets_an_incarnation_and_conflicts_with_any_stored_session() -> None:
    pending = prepare_save(_session())
    assert pending.creating and pending.version == 1 and pending.incarnation
    assert pending.conflict(None, None) is None
    error = pending.conflict(3, "other")
    assert isinstance(error, ConflictError) and error.actual_version == 3
    header = pending.header()
    assert header["version"] == 1 and header["incarnation"] == pending.incarnation
    assert "partial" not in header and "entries" not in header


@pytest.mark.parametrize(
    ("stored_version", "stored_incarnation", "expected"),
    [
        (2, "inc", None),
        (3, "inc", "stored version is 3"),
        (None, None, "it was deleted"),
        (2, "new", "deleted and created again"),
        (2, None, "deleted and created again"),
    ],
)
def test_an_update_conflicts_unless_the_same_incarnation_is_at_the_same_version(
    stored_version: int | None, stored_incarnation: str | None, expected: str | None
) -> None:
    session = _session(version=2, incarnation="inc")
    error = prepare_save(session).conflict(stored_version, stored_incarnation)
    if expected is None:
        assert error is None
    else:
        assert error is not None and expected in str(error)
        assert error.recreated == ("created again" in expected)


def test_done_marks_every_entry_saved_at_the_new_version() -> None:
    session = _session()
    pending = prepare_save(session)
    pending.done()
    assert session.version == 1 and session.incarnation == pending.incarnation
    assert list(session.unsaved_entries) == []


def test_conflict_error_takes_keywords() -> None:
    error = ConflictError("s1", expected_version=2, actual_version=None)
    assert (error.session_id, error.expected_version, error.actual_version) == ("s1", 2, None)
    assert not error.recreated and "deleted" in str(error)


def test_session_from_stored_counts_its_entries_saved_and_names_a_bad_header() -> None:
    header = prepare_save(_session(user_id="u")).header()
    loaded = session_from_stored(header)
    assert loaded.user_id == "u" and loaded.version == 1 and loaded.partial is None
    with pytest.raises(ValueError, match="created_at"):
        session_from_stored({"id": "s1"})
    with pytest.raises(ValueError, match="does not convert"):
        session_from_stored({**header, "version": "not a number"})


class _Owner:
    def __init__(self) -> None:
        self.resets = 0


def test_reset_after_fork_runs_in_the_child_only_while_the_owner_lives() -> None:
    owner, gone = _Owner(), _Owner()
    reset_after_fork(owner, lambda o: setattr(o, "resets", o.resets + 1))
    reset_after_fork(gone, lambda o: setattr(o, "resets", o.resets + 1))
    del gone
    gc.collect()

    async def in_child() -> None:
        assert owner.resets == 1

    run_in_forked_child(in_child)
    assert owner.resets == 0  # the parent is untouched


def test_store_recipe_opens_a_store_and_refuses_a_malformed_factory() -> None:
    recipe = StoreRecipe("builtins:dict", {"directory": "x"})  # any callable will do
    assert StoreRecipe.from_json(recipe.to_json()) == recipe
    assert recipe.open() == {"directory": "x"}  # type: ignore[comparison-overlap]
    with pytest.raises(InvalidArgumentError, match=r"package\.module:name"):
        StoreRecipe("no-colon").open()


DOC = Path(__file__).parent.parent / "docs" / "writing-a-plugin.md"


def test_every_backend_name_and_conformance_hook_is_documented() -> None:
    from spectra_core import backend

    text = DOC.read_text()
    hooks = ["make_store", "discard", "store_recipe", "reopen", "check_integrity"]
    hooks += ["supports_fork", "process_saves", "store_namespace"]
    missing = [n for n in [*backend.__all__, *hooks] if f"`{n}" not in text]
    assert not missing, f"docs/writing-a-plugin.md does not mention {missing}"
