"""SessionManager semantics over the in-memory store."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    ConflictError,
    EntryNotFoundError,
    ImageContent,
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
    with pytest.raises(EntryNotFoundError, match="nope"):
        manager.branch(s, "nope")
    assert s.leaf_id == a.id
    with pytest.raises(EntryNotFoundError):
        manager.get_branch(s, "nope")
    with pytest.raises(EntryNotFoundError):
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


# --- issue 11 item 3: a malformed entry is refused at append, never written ----------


@pytest.mark.parametrize(
    ("append", "field"),
    [
        (lambda m, s, a: m.append_message(s, {"role": "user", "content": "hi"}), "message"),
        (lambda m, s, a: m.append_message(s, None), "message"),
        (lambda m, s, a: m.append_message(s, 5), "message"),
        (lambda m, s, a: m.append_message(s, UserMessage(5)), "content"),
        (lambda m, s, a: m.append_message(s, UserMessage([{"type": "text"}])), "content"),
        (lambda m, s, a: m.append_message(s, "lone \ud800 surrogate"), "TextContent.text"),
        (lambda m, s, a: m.append_compaction(s, "x", a.id, tokens_before="5"), "tokens_before"),
        (lambda m, s, a: m.append_compaction(s, "x", a.id, tokens_before=True), "tokens_before"),
        (lambda m, s, a: m.append_label(s, a.id, 5), "LabelEntry.label"),
        (lambda m, s, a: m.append_custom(s, "t", {1: "int key"}), "custom entry data"),
        (lambda m, s, a: m.append_custom(s, "t", (1, 2)), "custom entry data"),
        (lambda m, s, a: m.append_custom(s, 5, None), "CustomEntry.custom_type"),
        (lambda m, s, a: m.append_audit(s, "e", {"x": float("inf")}), "audit details"),
        (lambda m, s, a: m.append_model_change(s, ModelRef("m", options={"t": [1j]})), "options"),
    ],
)
async def test_malformed_entries_are_refused_naming_the_field_and_nothing_is_written(
    manager: SessionManager, append: Any, field: str
) -> None:
    s = await manager.create()
    a = manager.append_message(s, "first")
    await manager.save(s)
    before = (list(s.entries), s.leaf_id, s.version)
    with pytest.raises(InvalidArgumentError, match=field):
        append(manager, s, a)
    assert (list(s.entries), s.leaf_id) == before[:2]
    await manager.save(s)
    loaded = await manager.load(s.id)
    assert loaded.entries == before[0]


# Values of any type: what the models accept must load back equal and of the same type.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "a\udfffb", "é\x00\u2028"])
)
_anything = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=2).map(tuple)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=6,
)
# content blocks are drawn as ("T", text) / ("I", data, mime) and made in the test
_content = _anything | st.lists(
    st.tuples(st.just("T"), _anything) | st.tuples(st.just("I"), _anything, _anything) | _anything,
    max_size=3,
)


def _blocks(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    out: list[Any] = []
    for b in content:
        if isinstance(b, tuple) and b[:1] == ("T",) and len(b) == 2:
            out.append(TextContent(b[1]))
        elif isinstance(b, tuple) and b[:1] == ("I",) and len(b) == 3:
            out.append(ImageContent(b[1], b[2]))
        else:
            out.append(b)
    return out


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("message"), _anything),
        st.tuples(st.just("user"), _content),
        st.tuples(st.just("custom"), _anything, _anything),
        st.tuples(st.just("audit"), _anything, _anything),
        st.tuples(st.just("label"), _anything),
        st.tuples(st.just("compaction"), _anything, _anything),
        st.tuples(st.just("custom_message"), _anything, _content, _anything),
        st.tuples(st.just("tool_result"), _anything, _anything, _content, _anything),
    ),
    min_size=1,
    max_size=6,
)


def _apply(m: SessionManager, s: Any, op: tuple[Any, ...]) -> None:
    kind, *args = op
    first = s.entries[0].id
    if kind == "message":
        m.append_message(s, args[0])
    elif kind == "user":
        m.append_message(s, UserMessage(_blocks(args[0])))
    elif kind == "custom":
        m.append_custom(s, *args)
    elif kind == "audit":
        m.append_audit(s, args[0], args[1] if isinstance(args[1], dict) else {"v": args[1]})
    elif kind == "label":
        m.append_label(s, first, args[0])
    elif kind == "compaction":
        m.append_compaction(s, args[0], first, tokens_before=args[1])
    elif kind == "custom_message":
        m.append_custom_message(s, args[0], _blocks(args[1]), details=args[2])
    else:
        m.append_message(s, ToolResultMessage(args[0], args[1], _blocks(args[2]), args[3]))


async def _round_trip(store: Any, ops: list[tuple[Any, ...]]) -> None:
    async with store:
        m = SessionManager(store)
        s = await m.create()
        m.append_message(s, "first")
        for op in ops:
            before = (list(s.entries), s.leaf_id)
            try:
                _apply(m, s, op)
            except InvalidArgumentError:
                assert (list(s.entries), s.leaf_id) == before  # refused: nothing attached
            await m.save(s)
            loaded = await m.load(s.id)
            assert loaded == s
            assert repr(loaded.entries) == repr(s.entries)  # 1 is not 1.0, "1" is not 1


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_what_append_accepts_loads_back_equal_memory(ops: list[tuple[Any, ...]]) -> None:
    from spectra_memory import InMemorySessionStore

    asyncio.run(_round_trip(InMemorySessionStore(), ops))


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_what_append_accepts_loads_back_equal_fs(ops: list[tuple[Any, ...]]) -> None:
    from spectra_fs import FileSystemSessionStore

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_round_trip(FileSystemSessionStore(d, durability="none"), ops))


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_what_append_accepts_loads_back_equal_sqlite(ops: list[tuple[Any, ...]]) -> None:
    from spectra_sqlite import SQLiteSessionStore

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_round_trip(SQLiteSessionStore(f"{d}/s.db", synchronous="off"), ops))
