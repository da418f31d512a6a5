"""Saves of big batches (several statements in one transaction) and failed saves that
must leave nothing behind: a stale copy, an entry id that is already stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from spectra_core import ConflictError, MessageEntry, SessionManager, StoreError
from spectra_core.testing import FakeClock
from spectra_core.tree import trim_to_active_branch
from spectra_sqlite import SQLiteSessionStore
from spectra_sqlite._rows import entry_rows
from spectra_sqlite._save import CHUNK

OpenStore = Callable[..., SQLiteSessionStore]
BIG = 2 * CHUNK + 7  # three statements: the header and a chunk, a chunk, the rest


def _rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT session_id, seq, id, parent_id, kind, depth, model_seq, compaction_seq"
            " FROM entries ORDER BY session_id, seq"
        ).fetchall()
    conn.close()
    return rows


def _header(db: Path, session_id: str) -> tuple[object, ...]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT version, entry_count, leaf_id FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
    conn.close()
    return tuple(row)


def _grow(manager: SessionManager, session: object, n: int, tag: str) -> None:
    for i in range(n):
        if i == CHUNK - 1:  # a model change at the end of the first chunk
            manager.append_model_change(session, f"model-{tag}")  # type: ignore[arg-type]
        elif i == CHUNK + 3:  # a side branch whose parent is in the previous chunk
            manager.branch(session, session.entries[-3].id)  # type: ignore[attr-defined]
            manager.append_message(session, f"{tag} side")  # type: ignore[arg-type]
        else:
            manager.append_message(session, f"{tag} {i}")  # type: ignore[arg-type]


async def test_big_batch_keeps_tree_columns_across_chunks(
    open_store: OpenStore, db_path: Path
) -> None:
    store = open_store(synchronous="off")
    manager = SessionManager(store, clock=FakeClock())
    s = await manager.create()
    _grow(manager, s, BIG, "first")
    await manager.save(s)
    part = await store.load_branch(s.id, tail=3)
    _grow(manager, part, BIG, "second")
    await manager.save(part)
    full = await store.load(s.id)
    assert len(full.entries) == 2 * BIG
    assert _rows(db_path) == [row[:8] for row in entry_rows(s.id, 0, full.entries, {})]
    assert _header(db_path, s.id) == (3, len(full.entries), part.leaf_id)
    for tail in (None, 1, CHUNK, 2 * CHUNK + 1):
        got = await store.load_branch(s.id, tail=tail)
        expected = trim_to_active_branch(full, tail)
        assert (got.entries, got.partial) == (expected.entries, expected.partial)


async def test_stale_big_batch_writes_nothing(open_store: OpenStore, db_path: Path) -> None:
    store = open_store(synchronous="off")
    manager = SessionManager(store, clock=FakeClock())
    s = await manager.create()
    stale = await store.load(s.id)
    manager.append_message(s, "wins")
    await manager.save(s)
    before = (_rows(db_path), _header(db_path, s.id))
    _grow(manager, stale, BIG, "stale")
    with pytest.raises(ConflictError) as info:
        await manager.save(stale)
    assert (info.value.expected_version, info.value.actual_version) == (1, 2)
    assert (_rows(db_path), _header(db_path, s.id)) == before
    assert stale.version == 1 and len(stale.unsaved_entries) == BIG


@pytest.mark.parametrize("size", [1, BIG])
async def test_reused_entry_id_writes_nothing(
    open_store: OpenStore, db_path: Path, size: int
) -> None:
    """A bounded copy does not know the old entries: reusing one of their ids fails the
    save as a whole (also when the duplicate is in the last statement of a big batch)."""
    store = open_store(synchronous="off")
    manager = SessionManager(store, clock=FakeClock())
    s = await manager.create()
    old = manager.append_message(s, "old")
    manager.append_message(s, "newer")
    await manager.save(s)
    before = (_rows(db_path), _header(db_path, s.id))
    part = await store.load_branch(s.id, tail=1)
    _grow(manager, part, size - 1, "batch")
    leaf = part.entries[-1]
    assert isinstance(leaf, MessageEntry)
    part.add_entry(attrs.evolve(leaf, id=old.id, parent_id=leaf.id))
    with pytest.raises(StoreError, match="reuses the id of a stored entry"):
        await manager.save(part)
    assert (_rows(db_path), _header(db_path, s.id)) == before
    # the store still works, and the session saves once the duplicate is gone
    again = await store.load(s.id)
    manager.append_message(again, "after")
    await manager.save(again)
    assert _header(db_path, s.id)[:2] == (3, 3)
