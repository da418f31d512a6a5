"""SessionManager semantics over the in-memory store."""

from __future__ import annotations

import pytest

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    ConflictError,
    EntryNotFound,
    InvalidArgumentError,
    InvalidIdError,
    ModelRef,
    SessionManager,
    TextContent,
    ToolResultMessage,
    UserMessage,
)
from spectra_core.tree import SUMMARY_TEMPLATE

pytestmark = pytest.mark.needs_plugins


async def test_append_attaches_at_leaf_and_moves_it(manager: SessionManager) -> None:
    s = await manager.create()
    a = manager.append_message(s, "hi")
    b = manager.append_audit(s, "seen", {"by": "test"})
    assert (a.parent_id, b.parent_id, s.leaf_id) == (None, a.id, b.id)
    assert len(s.unsaved_entries) == 2


async def test_branch_starts_a_sibling_in_place(manager: SessionManager) -> None:
    s = await manager.create()
    q = manager.append_message(s, "q")
    a1 = manager.append_message(s, AssistantMessage("one"))
    manager.branch(s, q.id)
    a2 = manager.append_message(s, AssistantMessage("two"))
    assert a2.parent_id == q.id
    assert [e.id for e in manager.get_branch(s)] == [q.id, a2.id]
    assert [e.id for e in manager.get_branch(s, a1.id)] == [q.id, a1.id]
    (root,) = manager.get_tree(s)
    assert [c.entry.id for c in root.children] == [a1.id, a2.id]
    assert [m.text for m in manager.build_context(s).messages] == ["q", "two"]
    assert [m.text for m in manager.build_context(s, a1.id).messages] == ["q", "one"]


async def test_branch_to_unknown_entry_raises_and_changes_nothing(
    manager: SessionManager,
) -> None:
    s = await manager.create()
    a = manager.append_message(s, "q")
    with pytest.raises(EntryNotFound, match="nope"):
        manager.branch(s, "nope")
    assert s.leaf_id == a.id
    with pytest.raises(EntryNotFound):
        manager.get_branch(s, "nope")
    with pytest.raises(EntryNotFound):
        manager.append_label(s, "nope", "x")


async def test_build_context_latest_model_change_wins(manager: SessionManager) -> None:
    s = await manager.create({"model": {"id": "configured"}, "system_prompt": "sp"})
    assert manager.build_context(s).model == ModelRef("configured")
    manager.append_message(s, "q")
    first = manager.append_model_change(s, ModelRef("m1", provider="p"))
    manager.append_message(s, "q2")
    manager.append_model_change(s, "m2")
    ctx = manager.build_context(s)
    assert ctx.model == ModelRef("m2") and ctx.system_prompt == "sp"
    assert manager.build_context(s, first.id).model == ModelRef("m1", provider="p")


async def test_build_context_skips_custom_and_sends_custom_messages(
    manager: SessionManager,
) -> None:
    s = await manager.create()
    manager.append_message(s, "q")
    manager.append_custom(s, "ui", {"x": 1})
    manager.append_audit(s, "evt")
    manager.append_custom_message(s, "note", "injected")
    manager.append_message(s, AssistantMessage([TextContent("a")]))
    manager.append_message(s, ToolResultMessage("c1", "tool", "r"))
    msgs = manager.build_context(s).messages
    assert [type(m) for m in msgs] == [
        UserMessage,
        UserMessage,
        AssistantMessage,
        ToolResultMessage,
    ]
    assert [m.text for m in msgs] == ["q", "injected", "a", "r"]


async def test_build_context_compaction_replaces_summarised_part(
    manager: SessionManager,
) -> None:
    s = await manager.create()
    msgs = [manager.append_message(s, f"m{i}") for i in range(6)]
    comp = manager.append_compaction(s, "first four", msgs[4].id, tokens_before=500)
    manager.append_message(s, "after")
    ctx = manager.build_context(s)
    assert [m.text for m in ctx.messages] == [
        SUMMARY_TEMPLATE.format(summary="first four"),
        "m4",
        "m5",
        "after",
    ]
    # the context before the compaction is unchanged
    assert len(manager.build_context(s, msgs[5].id).messages) == 6
    assert isinstance(comp, CompactionEntry) and comp.tokens_before == 500


async def test_compaction_must_keep_an_entry_of_the_branch(manager: SessionManager) -> None:
    s = await manager.create()
    a = manager.append_message(s, "a")
    manager.branch(s, None)
    manager.append_message(s, "other root")
    with pytest.raises(InvalidArgumentError, match="not on the active branch"):
        manager.append_compaction(s, "x", a.id)


async def test_user_message_accepts_plain_string() -> None:
    assert UserMessage("hi").content == (TextContent("hi"),)
    assert UserMessage([TextContent("a"), TextContent("b")]).text == "ab"


async def test_non_json_payloads_are_refused_before_entering_the_tree(
    manager: SessionManager,
) -> None:
    s = await manager.create()
    with pytest.raises(InvalidArgumentError, match="custom entry data"):
        manager.append_custom(s, "bad", {"x": object()})
    with pytest.raises(InvalidArgumentError, match="audit details"):
        manager.append_audit(s, "bad", {"x": float("nan")})
    assert s.entries == []


async def test_fork_records_provenance(manager: SessionManager) -> None:
    s = await manager.create(user_id="u")
    a = manager.append_message(s, "a")
    manager.append_message(s, "b")
    await manager.save(s)
    f = await manager.fork(s.id, a.id)
    assert f.forked_from is not None and f.forked_from.entry_id == a.id
    audit = f.entries[-1]
    assert isinstance(audit, AuditEntry)
    assert audit.details == {"source_session_id": s.id, "source_entry_id": a.id}
    assert [e.id for e in manager.get_branch(f)] == [a.id, audit.id]
    assert len((await manager.load(s.id)).entries) == 2


async def test_conflicting_saves_raise(manager: SessionManager) -> None:
    s = await manager.create()
    one, two = await manager.load(s.id), await manager.load(s.id)
    manager.append_message(one, "1")
    manager.append_message(two, "2")
    await manager.save(one)
    with pytest.raises(ConflictError, match="reload and retry"):
        await manager.save(two)


@pytest.mark.parametrize("bad", ["a/b", "..", "x\x00", "x" * 300])
async def test_bad_session_ids(manager: SessionManager, bad: str) -> None:
    with pytest.raises(InvalidIdError):
        await manager.load(bad)
    with pytest.raises(InvalidIdError):
        await manager.create(session_id=bad)
    with pytest.raises(InvalidIdError):
        await manager.fork(bad)
