"""Bounded loading: load_branch reads only the active branch window, matching a full load."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectra_core import AssistantMessage, CompactionEntry, ConflictError, SessionManager
from spectra_core.testing import FakeClock
from spectra_core.tree import get_branch, trim_to_active_branch
from spectra_sqlite import SQLiteSessionStore
from spectra_sqlite._rows import entry_rows
from spectra_sqlite._store import _WALK, _WALK_IDS

OpenStore = Callable[..., SQLiteSessionStore]


def _plan(db: Path, sql: str, params: tuple[object, ...]) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    conn.close()
    return "\n".join(str(r[3]) for r in rows)


async def test_hundred_thousand_entries_tail_fifty(open_store: OpenStore, db_path: Path) -> None:
    store = open_store(synchronous="off")
    manager = SessionManager(store, clock=FakeClock())
    s = await manager.create({"model": {"id": "configured"}})
    n = 100_000
    for i in range(n):
        if i == 60_000:
            manager.append_model_change(s, "mid-model")
        elif i == 99_900:
            # a side branch near the end, left behind by moving the leaf back
            fork_point = s.leaf_id
            manager.append_message(s, "abandoned")
            manager.branch(s, fork_point)
        else:
            manager.append_message(s, f"m{i}")
    await manager.save(s)
    branch = get_branch(s)

    part = await store.load_branch(s.id, tail=50)
    assert len(part.entries) == 50
    assert part.entries == branch[-50:]
    assert part.partial is not None and part.partial.first_entry_id == branch[-50].id
    assert part.partial.model is not None and part.partial.model.id == "mid-model"
    assert manager.build_context(part).model == manager.build_context(s).model

    # a partial session appends and saves in place, and the full load still matches
    new = manager.append_message(part, "after the tail load")
    await manager.save(part)
    again = await store.load_branch(s.id, tail=2)
    assert [e.id for e in again.entries] == [branch[-1].id, new.id]
    full = await store.load(s.id)
    assert len(full.entries) == n + 1
    assert full.entries[-1] == new
    assert (
        trim_to_active_branch(full, 50).entries == (await store.load_branch(s.id, tail=50)).entries
    )


async def test_branch_walk_uses_the_entry_index(open_store: OpenStore, db_path: Path) -> None:
    await open_store().ping()
    for sql, params in ((_WALK, ("s", "e", 50)), (_WALK_IDS, ("s", "e", 50))):
        plan = _plan(db_path, sql, params).splitlines()
        on_entries = [line for line in plan if "entries" in line or "SEARCH e " in line]
        assert on_entries, plan
        for line in on_entries:
            # every read of entries is one lookup by id, never a range over the session
            assert "USING INDEX entries_by_id (session_id=? AND id=?)" in line, plan


async def _steps(store: SQLiteSessionStore, work: Callable[[], Awaitable[object]]) -> int:
    """SQLite virtual-machine steps (in hundreds) that ``work`` costs: rows read, not time."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    assert store._db is not None
    await store._db.set_progress_handler(count, 100)
    try:
        await work()
    finally:
        await store._db.set_progress_handler(None, 100)  # type: ignore[arg-type]  # None removes it
    return steps


async def test_bounded_load_and_append_cost_do_not_grow(open_store: OpenStore) -> None:
    store = open_store(synchronous="off")
    manager = SessionManager(store, clock=FakeClock())
    costs = {}
    for n in (200, 20_000):
        s = await manager.create()
        manager.append_model_change(s, "early")
        for i in range(n):
            manager.append_message(s, f"m{i}")
        await manager.save(s)
        load = await _steps(store, partial(store.load_branch, s.id, tail=20))
        part = await store.load_branch(s.id, tail=20)
        assert part.partial is not None and part.partial.model is not None
        manager.append_message(s, "one more")
        append = await _steps(store, partial(manager.save, s))
        costs[n] = (load, append)
    (small_load, small_append), (big_load, big_append) = costs[200], costs[20_000]
    assert big_load <= small_load * 1.5 + 5, costs
    assert big_append <= small_append * 1.5 + 5, costs


async def test_compaction_window_with_tail(open_store: OpenStore) -> None:
    manager = SessionManager(open_store(), clock=FakeClock())
    s = await manager.create()
    for i in range(20):
        manager.append_message(s, f"q{i}")
    kept = get_branch(s)[10]
    manager.append_compaction(s, "first half", kept.id)
    manager.append_model_change(s, "after-compaction")
    for i in range(5):
        manager.append_message(s, AssistantMessage(f"a{i}"))
    await manager.save(s)
    for tail in (None, 1, 3, 7, 16, 17, 100):
        part = await manager.load(s.id, active_branch=True, tail=tail)
        expected = trim_to_active_branch(await manager.load(s.id), tail)
        assert part.entries == expected.entries, tail
        assert part.partial == expected.partial, tail


@st.composite
def _scripts(draw: st.DrawFn) -> list[tuple[str, int]]:
    ops = st.sampled_from(
        ["msg", "msg", "msg", "model", "branch", "compact", "save", "root", "anycompact"]
    )
    return draw(st.lists(st.tuples(ops, st.integers(0, 1000)), min_size=1, max_size=40))


async def _check_script(script: list[tuple[str, int]], folder: str) -> None:
    async with SQLiteSessionStore(Path(folder) / "s.db", synchronous="off") as store:
        manager = SessionManager(store, clock=FakeClock())
        s = await manager.create({"model": {"id": "configured"}})
        for op, k in script:
            if op == "msg":
                manager.append_message(s, f"m{k}")
            elif op == "model":
                manager.append_model_change(s, f"model-{k}")
            elif op == "branch" and s.entries:
                manager.branch(s, s.entries[k % len(s.entries)].id)
            elif op == "root":
                manager.branch(s, None)
            elif op == "compact" and (path := get_branch(s)):
                manager.append_compaction(s, "sum", path[k % len(path)].id)
            elif op == "anycompact" and s.entries:
                # a compaction whose kept entry may lie off its branch (foreign data)
                s.add_entry(
                    CompactionEntry(
                        id=f"c{len(s.entries)}",
                        parent_id=s.leaf_id,
                        timestamp=s.updated_at,
                        summary="sum",
                        first_kept_entry_id=s.entries[k % len(s.entries)].id,
                    )
                )
            elif op == "save":
                await manager.save(s)
        await manager.save(s)
        full = await store.load(s.id)
        for tail in (None, 1, 2, 5, 13):
            part = await store.load_branch(s.id, tail=tail)
            expected = trim_to_active_branch(full, tail)
            assert part.entries == expected.entries, tail
            assert part.partial == expected.partial, tail
            assert part.leaf_id == full.leaf_id and part.version == full.version
            context, whole = manager.build_context(part), manager.build_context(full)
            assert context.model == whole.model
            if tail is None:
                assert context == whole


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scripts())
def test_load_branch_matches_trimmed_full_load(script: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_check_script(script, folder))


async def test_compaction_keeping_an_entry_off_its_branch(open_store: OpenStore) -> None:
    """Foreign data: the compaction's kept entry sits on another branch (the manager never
    writes this), so the window starts at the compaction, as in a full load."""
    manager = SessionManager(open_store(), clock=FakeClock())
    s = await manager.create()
    root = manager.append_message(s, "root")
    manager.append_message(s, "side 1")
    side = manager.append_message(s, "side 2")
    manager.branch(s, root.id)
    for i in range(4):
        manager.append_message(s, f"main {i}")
    s.add_entry(
        CompactionEntry(
            id="odd-compaction",
            parent_id=s.leaf_id,
            timestamp=s.updated_at,
            summary="sum",
            first_kept_entry_id=side.id,
        )
    )
    for i in range(3):
        manager.append_message(s, f"after {i}")
    await manager.save(s)
    full = await manager.load(s.id)
    for tail in (None, 1, 4, 5, 6, 7, 50):
        part = await manager.load(s.id, active_branch=True, tail=tail)
        expected = trim_to_active_branch(full, tail)
        assert part.entries == expected.entries, tail
        assert part.partial == expected.partial, tail
    assert (await manager.load(s.id, active_branch=True)).entries[0].id == "odd-compaction"


def _stored_tree_columns(db: Path, session_id: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT session_id, seq, id, parent_id, kind, depth, model_seq, compaction_seq"
            " FROM entries WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
    conn.close()
    return rows


@pytest.mark.parametrize("seed", range(4))
async def test_two_stores_interleaving_batches_keep_tree_columns_right(
    open_store: OpenStore, db_path: Path, seed: int
) -> None:
    """Saves from two stores on one file, in batches whose parents are in the batch, stored
    by this store or stored by the other one: no entry is lost, the tree columns equal a
    recomputation from the whole session and bounded loads match a full load."""
    rng = random.Random(seed)
    stores = [open_store(synchronous="off"), open_store(synchronous="off")]
    managers = [SessionManager(store, clock=FakeClock()) for store in stores]
    s = await managers[0].create()
    copies = [s, await stores[1].load(s.id)]
    written = 0
    for turn in range(40):
        side = rng.randrange(2)
        manager, copy = managers[side], copies[side]
        for _ in range(rng.randint(0, 4)):
            roll = rng.random()
            ids = [e.id for e in copy.entries]
            if roll < 0.1 and ids:
                manager.branch(copy, rng.choice(ids))
            if roll < 0.2:
                manager.append_model_change(copy, f"model-{turn}")
            elif roll < 0.3 and copy.leaf_id is not None:
                on_branch = [e.id for e in get_branch(copy)]
                manager.append_compaction(copy, f"summary {turn}", rng.choice(on_branch))
            else:
                manager.append_message(copy, f"m{turn}")
        pending = len(copy.unsaved_entries)
        try:
            await manager.save(copy)
            written += pending
        except ConflictError:
            # reload (fully or bounded, as an application may) and save nothing lost
            tail = rng.choice([None, 1, 3])
            copies[side] = await manager.load(s.id, tail=tail)
        full = await stores[1 - side].load(s.id)
        assert len(full.entries) == written
        assert _stored_tree_columns(db_path, s.id) == [
            row[:8] for row in entry_rows(s.id, 0, full.entries, {})
        ]
        for tail in (None, 1, 2, 5):
            part = await stores[side].load_branch(s.id, tail=tail)
            expected = trim_to_active_branch(full, tail)
            assert (part.entries, part.partial) == (expected.entries, expected.partial), tail
