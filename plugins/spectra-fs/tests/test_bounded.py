"""Bounded loading: load_branch reads the window, not the file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectra_core import AssistantMessage, SessionManager
from spectra_core.testing import FakeClock
from spectra_core.tree import trim_to_active_branch
from spectra_fs import FileSystemSessionStore

N = 20_000


def _bytes_read() -> int:
    """Bytes this process has read through read syscalls (all threads), from the kernel."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


async def test_load_branch_of_a_long_session_reads_a_small_part(
    manager: SessionManager, store: FileSystemSessionStore
) -> None:
    s = await manager.create({"model": {"id": "configured"}})
    manager.append_model_change(s, "early-model")
    for i in range(N // 2):
        manager.append_message(s, f"question {i}")
        manager.append_message(s, AssistantMessage(f"answer {i} " + "words " * 10))
    await manager.save(s)  # one save of 20,000 entries: the quick way to build it
    manager.append_message(s, "one more")
    await manager.save(s)
    size = store.path_of(s.id).stat().st_size

    before = _bytes_read()
    part = await store.load_branch(s.id, tail=50)
    read = _bytes_read() - before
    assert read < size / 20, (read, size)
    full = await store.load(s.id)
    expected = trim_to_active_branch(full, 50)
    assert part.entries == expected.entries and part.partial == expected.partial
    assert part.partial is not None and part.partial.model is not None
    assert part.partial.model.id == "early-model"  # found through the model pointer

    branch = manager.get_branch(full)
    kept = branch[-30]
    manager.append_compaction(full, "summary", kept.id, tokens_before=10)
    manager.append_message(full, "after compaction")
    await manager.save(full)
    before = _bytes_read()
    part = await store.load_branch(s.id)
    read = _bytes_read() - before
    assert read < size / 20, (read, size)
    assert part.entries[0] == kept
    assert part.entries == trim_to_active_branch(await store.load(s.id)).entries

    # move the leaf back to an early entry and continue there: saving and loading still
    # follow parent pointers instead of scanning
    early = branch[10]
    manager.branch(full, early.id)
    manager.append_message(full, "a side branch")
    await manager.save(full)
    part = await store.load_branch(s.id, tail=3)
    assert [e.id for e in part.entries] == [e.id for e in manager.get_branch(full)[-3:]]
    assert part.entries == trim_to_active_branch(await store.load(s.id), 3).entries


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("msg"), st.integers(0, 3)),
        st.tuples(st.just("model"), st.integers(0, 3)),
        st.tuples(st.just("compact"), st.integers(0, 20)),
        st.tuples(st.just("branch"), st.integers(0, 50)),
        st.tuples(st.just("save"), st.integers(0, 0)),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
async def test_load_branch_equals_trimmed_full_load(
    tmp_path: Path, ops: list[tuple[str, int]]
) -> None:
    async with FileSystemSessionStore(tmp_path / "p", durability="none") as store:
        manager = SessionManager(store, clock=FakeClock())
        s = await manager.create()
        for op, n in ops:
            if op == "msg":
                manager.append_message(s, f"m{n}")
            elif op == "model":
                manager.append_model_change(s, f"model-{n}")
            elif op == "compact" and s.entries:
                path = manager.get_branch(s)
                target = path[max(0, len(path) - 1 - n)] if path else s.entries[0]
                manager.append_compaction(s, "sum", target.id)
            elif op == "branch" and s.entries:
                manager.branch(s, s.entries[n % len(s.entries)].id)
            elif op == "save":
                await manager.save(s)
        await manager.save(s)
        full = await store.load(s.id)
        assert full == s
        for tail in (None, 1, 2, 5):
            part = await store.load_branch(s.id, tail=tail)
            expected = trim_to_active_branch(full, tail)
            assert part.entries == expected.entries, tail
            assert part.partial == expected.partial, tail
            assert part.leaf_id == full.leaf_id and part.version == full.version
        await store.delete(s.id)
