"""Hypothesis state machine: random appends, branches, saves, reloads and forks keep the
tree invariants, checked against a small reference model."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    ConflictError,
    Session,
    SessionManager,
)
from spectra_core.serde import session_to_dict
from spectra_core.testing import FakeClock

pytestmark = pytest.mark.needs_plugins


@attrs.define
class ModelSession:
    """The reference: parent of each entry, in append order, and the leaf."""

    parents: dict[str, str | None] = attrs.field(factory=dict)
    leaf: str | None = None

    def path(self, entry_id: str | None) -> list[str]:
        out = []
        while entry_id is not None:
            out.append(entry_id)
            entry_id = self.parents[entry_id]
        return out[::-1]


class SessionTreeMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        from spectra_memory import InMemorySessionStore

        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        self.manager = SessionManager(InMemorySessionStore(), clock=self.clock)
        self.live: dict[str, Session] = {}
        self.model: dict[str, ModelSession] = {}
        self.saved: dict[str, ModelSession] = {}
        self.frozen_sources: dict[str, dict[str, Any]] = {}

    def teardown(self) -> None:
        self.runner.close()

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    @initialize(target=sessions)
    def create(self) -> str:
        s = self.run(self.manager.create({"system_prompt": "sp", "model": {"id": "m0"}}))
        self.live[s.id] = s
        self.model[s.id] = ModelSession()
        self.saved[s.id] = ModelSession()
        return s.id

    @rule(sid=sessions, kind=st.sampled_from(["user", "assistant", "model", "custom", "audit"]))
    def append(self, sid: str, kind: str) -> None:
        s, m = self.live[sid], self.model[sid]
        self.clock.advance(1)
        if kind == "user":
            e: Any = self.manager.append_message(s, f"u{len(s.entries)}")
        elif kind == "assistant":
            e = self.manager.append_message(s, AssistantMessage(f"a{len(s.entries)}"))
        elif kind == "model":
            e = self.manager.append_model_change(s, f"m{len(s.entries)}")
        elif kind == "custom":
            e = self.manager.append_custom(s, "c", {"n": len(s.entries)})
        else:
            e = self.manager.append_audit(s, "evt", {"n": len(s.entries)})
        assert e.parent_id == m.leaf
        m.parents[e.id] = m.leaf
        m.leaf = e.id

    @rule(sid=sessions, data=st.data())
    def branch(self, sid: str, data: st.DataObject) -> None:
        s, m = self.live[sid], self.model[sid]
        target = data.draw(st.sampled_from([None, *m.parents]))
        self.manager.branch(s, target)
        m.leaf = target

    @rule(sid=sessions)
    def save(self, sid: str) -> None:
        self.run(self.manager.save(self.live[sid]))
        self.saved[sid] = copy.deepcopy(self.model[sid])

    @rule(sid=sessions)
    def reload(self, sid: str) -> None:
        loaded = self.run(self.manager.load(sid))
        saved = self.saved[sid]
        assert [e.id for e in loaded.entries] == list(saved.parents)
        assert loaded.leaf_id == saved.leaf
        self.live[sid] = loaded
        self.model[sid] = copy.deepcopy(saved)

    @rule(sid=sessions)
    def stale_save_conflicts(self, sid: str) -> None:
        """A copy loaded before another save cannot overwrite it, and writes nothing."""
        self.save(sid)
        stale = self.run(self.manager.load(sid))
        fresh = self.run(self.manager.load(sid))
        self.run(self.manager.save(fresh))
        self.manager.append_custom(stale, "stale")
        with pytest.raises(ConflictError):
            self.run(self.manager.save(stale))
        self.reload(sid)

    @precondition(lambda self: len(self.live) < 6)
    @rule(target=sessions, sid=sessions, data=st.data())
    def fork(self, sid: str, data: st.DataObject) -> str:
        saved = self.saved[sid]
        target = data.draw(st.sampled_from([None, *saved.parents]))
        before = session_to_dict(self.run(self.manager.load(sid)))
        f = self.run(self.manager.fork(sid, target))
        after = session_to_dict(self.run(self.manager.load(sid)))
        assert after == before, "fork changed its source"
        path = saved.path(saved.leaf if target is None else target)
        assert [e.id for e in f.entries[:-1]] == path
        assert isinstance(f.entries[-1], AuditEntry)
        model = ModelSession()
        for eid in path:
            model.parents[eid] = model.leaf
            model.leaf = eid
        model.parents[f.entries[-1].id] = model.leaf
        model.leaf = f.entries[-1].id
        self.live[f.id] = f
        self.model[f.id] = model
        self.saved[f.id] = copy.deepcopy(model)
        return f.id

    @invariant()
    def every_parent_exists_and_branch_is_a_root_path(self) -> None:
        for sid, s in self.live.items():
            m = self.model[sid]
            assert [e.id for e in s.entries] == list(m.parents)
            assert s.leaf_id == m.leaf
            ids = {e.id for e in s.entries}
            assert all(e.parent_id is None or e.parent_id in ids for e in s.entries)
            branch = self.manager.get_branch(s)
            assert [e.id for e in branch] == m.path(m.leaf)
            if branch:
                assert branch[0].parent_id is None
            for child, parent in zip(branch[1:], branch, strict=False):
                assert child.parent_id == parent.id

    @invariant()
    def tree_holds_every_entry_once(self) -> None:
        for s in self.live.values():
            seen: list[str] = []
            stack = list(self.manager.get_tree(s))
            while stack:
                node = stack.pop()
                seen.append(node.entry.id)
                stack.extend(node.children)
            assert sorted(seen) == sorted(e.id for e in s.entries)

    @invariant()
    def build_context_is_deterministic(self) -> None:
        for s in self.live.values():
            a = self.manager.build_context(s)
            b = self.manager.build_context(s)
            assert a == b
            models = [e for e in self.manager.get_branch(s) if e.type == "model_change"]
            expected = models[-1].model.id if models else "m0"  # type: ignore[union-attr]
            assert a.model is not None and a.model.id == expected


TestSessionTree = SessionTreeMachine.TestCase
TestSessionTree.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
