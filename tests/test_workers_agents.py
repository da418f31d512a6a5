"""AgentRegistry: delegation with provenance, budgets, parallel delegation with a failure,
delegation through a tool, registries from config."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    ConfigError,
    InvalidArgumentError,
    MessageEntry,
    ModelRef,
    SessionManager,
    ToolCall,
    Usage,
    tool,
)
from spectra_core.agent import ModelRequest, ProviderError
from spectra_core.agent.builtin import ScriptedProvider, stream_message
from spectra_core.agent.provider import ProviderEvent
from spectra_core.engine import SessionEngine
from spectra_core.testing import FakeClock, GatedProvider
from spectra_core.workers import (
    DELEGATION_FINISHED,
    DELEGATION_STARTED,
    AgentConfig,
    AgentRegistry,
    Budget,
    BudgetLimit,
    DelegationStatus,
    parse_agents,
)

pytestmark = pytest.mark.needs_plugins

ECHO = ModelRef("echo-1", provider="echo")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def engine_with(manager: SessionManager, clock: FakeClock, **providers: Any) -> SessionEngine:
    engine = SessionEngine(manager, clock=clock, providers=providers)
    engine.start()
    return engine


def tool_call_reply(request: ModelRequest) -> AssistantMessage:
    """Asks for another tool call every time, costing 50 tokens."""
    n = len(request.messages)
    return AssistantMessage(
        [ToolCall(f"c{n}", "add", {"a": n, "b": 1})],
        usage=Usage(30, 20),
        stop_reason="tool_use",
    )


class CountingProvider:
    """Answers after yielding to the loop a few times; records the peak of calls at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            for _ in range(5):
                await asyncio.sleep(0)
        finally:
            self.active -= 1
        message = AssistantMessage("done", model=request.model.id, usage=Usage(1, 1))
        async for event in stream_message(message):
            yield event

    async def aclose(self) -> None:
        """Nothing to release."""


async def test_delegate_runs_in_its_own_session_with_provenance(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = engine_with(manager, clock)
    registry = AgentRegistry(engine)
    registry.register_agent("researcher", AgentConfig(ECHO, "You research."))
    parent = await manager.create(user_id="u1", tenant_id="acme")
    first = manager.append_message(parent, "hello")
    await manager.save(parent)

    result = await registry.delegate("researcher", "find rust", parent_session_id=parent.id)

    assert (result.status, result.text, result.turns) == (
        DelegationStatus.COMPLETED,
        "echo: find rust",
        1,
    )
    assert result.ok and result.tokens > 0 and result.budget_exceeded is None
    assert result.session_id is not None and result.session_id != parent.id
    child = await manager.load(result.session_id)
    assert child.config.metadata["delegation"] == {
        "agent_type": "researcher",
        "parent_session_id": parent.id,
        "parent_entry_id": first.id,
    }
    assert (child.user_id, child.tenant_id, child.config.system_prompt) == (
        "u1",
        "acme",
        "You research.",
    )
    audits = [e for e in (await manager.load(parent.id)).entries if isinstance(e, AuditEntry)]
    assert [a.event_type for a in audits] == [DELEGATION_STARTED, DELEGATION_FINISHED]
    assert all(a.details["child_session_id"] == child.id for a in audits)
    assert audits[1].details["status"] == "completed"
    await engine.stop()


async def test_delegate_without_parent_belongs_to_the_registry_user(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = engine_with(manager, clock)
    registry = AgentRegistry(engine, user_id="orchestrator")
    registry.register_agent("a", AgentConfig(ECHO))
    result = await registry.delegate("a", "hi")
    assert result.session_id is not None
    child = await manager.load(result.session_id)
    assert child.user_id == "orchestrator"
    assert child.config.metadata["delegation"]["parent_session_id"] is None
    await engine.stop()


async def test_max_turns_budget_stops_the_run_and_says_so(
    manager: SessionManager, clock: FakeClock
) -> None:
    scripted = ScriptedProvider([tool_call_reply] * 10)
    engine = engine_with(manager, clock, scripted=scripted)
    registry = AgentRegistry(engine)
    registry.register_agent("looper", AgentConfig(ModelRef("s", provider="scripted"), tools=[add]))
    result = await registry.delegate("looper", "loop", Budget(max_turns=2))
    assert (result.status, result.budget_exceeded, result.turns) == (
        DelegationStatus.BUDGET_EXCEEDED,
        BudgetLimit.MAX_TURNS,
        2,
    )
    assert result.error is not None and "max_turns" in result.error
    assert scripted.remaining == 8
    await engine.stop()


async def test_max_tokens_budget_stops_after_the_call_that_crosses_it(
    manager: SessionManager, clock: FakeClock
) -> None:
    scripted = ScriptedProvider([tool_call_reply] * 10)
    engine = engine_with(manager, clock, scripted=scripted)
    registry = AgentRegistry(engine)
    registry.register_agent("looper", AgentConfig(ModelRef("s", provider="scripted"), tools=[add]))
    result = await registry.delegate("looper", "loop", Budget(max_tokens=120))
    assert (result.status, result.budget_exceeded, result.tokens) == (
        DelegationStatus.BUDGET_EXCEEDED,
        BudgetLimit.MAX_TOKENS,
        150,
    )
    assert scripted.remaining == 7  # three calls of 50 tokens: the third crossed 120
    assert result.session_id is not None
    child = await manager.load(result.session_id)
    kinds = [e.details.get("status") for e in child.entries if isinstance(e, AuditEntry)]
    assert kinds[-1] == "aborted"
    await engine.stop()


async def test_deadline_budget_times_the_run_out(manager: SessionManager, clock: FakeClock) -> None:
    gated = GatedProvider()
    engine = engine_with(manager, clock, gated=gated)
    registry = AgentRegistry(engine)
    registry.register_agent("slow", AgentConfig(ModelRef("g", provider="gated")))
    task = asyncio.ensure_future(
        registry.delegate("slow", "take your time", Budget.within(5, clock=clock))
    )
    await asyncio.wait_for(gated.started.wait(), 5)
    clock.advance(5)
    result = await asyncio.wait_for(task, 5)
    assert (result.status, result.budget_exceeded) == (
        DelegationStatus.BUDGET_EXCEEDED,
        BudgetLimit.DEADLINE,
    )
    assert result.text == "partial answer"
    await engine.stop()


async def test_a_deadline_already_past_starts_nothing(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = engine_with(manager, clock)
    registry = AgentRegistry(engine)
    registry.register_agent("a", AgentConfig(ECHO))
    result = await registry.delegate("a", "late", Budget(deadline=clock.time()))
    assert (result.status, result.budget_exceeded, result.session_id) == (
        DelegationStatus.BUDGET_EXCEEDED,
        BudgetLimit.DEADLINE,
        None,
    )
    assert not (await manager.list()).sessions
    await engine.stop()


async def test_execute_parallel_keeps_order_and_reports_a_failure_per_task(
    manager: SessionManager, clock: FakeClock
) -> None:
    counting = CountingProvider()
    broken = ScriptedProvider([ProviderError("model is gone", provider="broken")])
    engine = engine_with(manager, clock, counting=counting, broken=broken)
    registry = AgentRegistry(engine)
    registry.register_agent("good", AgentConfig(ModelRef("c", provider="counting")))
    registry.register_agent("bad", AgentConfig(ModelRef("b", provider="broken")))
    parent = await manager.create(user_id="u1")
    tasks = [
        {"agent_type": "good", "task": "one"},
        {"agent_type": "bad", "task": "two"},
        {"agent_type": "good", "task": "three"},
        {"agent_type": "good", "task": "four"},
        {"agent_type": "good", "task": "five"},
    ]
    results = await registry.execute_parallel(tasks, max_concurrency=2, parent_session_id=parent.id)
    assert [r.task for r in results] == ["one", "two", "three", "four", "five"]
    assert [r.status for r in results] == [
        DelegationStatus.COMPLETED,
        DelegationStatus.FAILED,
        *[DelegationStatus.COMPLETED] * 3,
    ]
    assert results[1].error is not None and "model is gone" in results[1].error
    assert counting.peak == 2
    audits = [e for e in (await manager.load(parent.id)).entries if isinstance(e, AuditEntry)]
    finished = [a.details for a in audits if a.event_type == DELEGATION_FINISHED]
    assert sorted(d["status"] for d in finished) == ["completed"] * 4 + ["failed"]
    await engine.stop()


async def test_execute_parallel_checks_every_task_before_running_any(
    manager: SessionManager, clock: FakeClock
) -> None:
    engine = engine_with(manager, clock)
    registry = AgentRegistry(engine)
    registry.register_agent("researcher", AgentConfig(ECHO))
    bad_lists: list[tuple[list[Any], str]] = [
        (
            [{"agent_type": "researcher", "task": "ok"}, {"agent_type": "reseacher", "task": "x"}],
            r"tasks\[1\]\.agent_type: unknown agent 'reseacher'; did you mean 'researcher'",
        ),
        ([{"agent_type": "researcher", "task": ""}], r"tasks\[0\]\.task"),
        ([{"agent_type": "researcher", "task": "x", "budgt": 1}], r"tasks\[0\]: unknown key"),
        (["researcher"], r"tasks\[0\] must be a mapping"),
        ([{"agent_type": "researcher", "task": "x", "budget": 5}], r"tasks\[0\]\.budget"),
    ]
    for tasks, match in bad_lists:
        with pytest.raises(InvalidArgumentError, match=match):
            await registry.execute_parallel(tasks)
    with pytest.raises(InvalidArgumentError, match="max_concurrency"):
        await registry.execute_parallel([], max_concurrency=0)
    assert not (await manager.list()).sessions
    await engine.stop()


async def test_an_agent_delegates_through_a_tool(manager: SessionManager, clock: FakeClock) -> None:
    lead = ScriptedProvider(
        [
            AssistantMessage(
                [ToolCall("t1", "delegate_to_researcher", {"task": "dig into rust"})],
                stop_reason="tool_use",
            ),
            "Here is what the researcher found.",
        ]
    )
    engine = engine_with(manager, clock, scripted=lead)
    registry = AgentRegistry(engine)
    registry.register_agent(
        "researcher", AgentConfig(ECHO, description="Researches a topic in depth.")
    )
    delegation = registry.as_tool("researcher")
    assert delegation.spec.description == "Researches a topic in depth."
    result = await engine.run(
        "u1",
        "research rust",
        options={"model": {"id": "lead", "provider": "scripted"}, "tools": [delegation]},
    )
    assert result.status.value == "completed"
    parent = await manager.load(result.session_id)
    tool_results = [
        e.message
        for e in parent.entries
        if isinstance(e, MessageEntry) and e.message.role == "tool_result"
    ]
    assert len(tool_results) == 1 and not tool_results[0].is_error  # type: ignore[union-attr]
    text = tool_results[0].text
    assert '"status": "completed"' in text and "echo: dig into rust" in text
    calls = [
        e
        for e in parent.entries
        if isinstance(e, MessageEntry)
        and isinstance(e.message, AssistantMessage)
        and e.message.tool_calls
    ]
    children = [s for s in (await manager.list()).sessions if s.id != parent.id]
    assert len(children) == 1
    child = await manager.load(children[0].id)
    assert child.config.metadata["delegation"] == {
        "agent_type": "researcher",
        "parent_session_id": parent.id,
        "parent_entry_id": calls[0].id,
    }
    assert child.user_id == "u1"
    await engine.stop()


def test_register_agent_checks_its_arguments(manager: SessionManager, clock: FakeClock) -> None:
    registry = AgentRegistry(SessionEngine(manager, clock=clock))
    registry.register_agent("a", AgentConfig(ECHO))
    with pytest.raises(InvalidArgumentError, match="already registered"):
        registry.register_agent("a", AgentConfig(ECHO))
    with pytest.raises(InvalidArgumentError, match="not allowed"):
        registry.register_agent("has space", AgentConfig(ECHO))
    with pytest.raises(InvalidArgumentError, match="AgentConfig"):
        registry.register_agent("b", {"model": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_turns"):
        AgentConfig(ECHO, max_turns=0)
    with pytest.raises(InvalidArgumentError, match="max_tokens"):
        Budget(max_tokens=0)
    with pytest.raises(InvalidArgumentError, match="unknown agent 'b'"):
        registry.as_tool("b")


async def test_delegate_checks_its_arguments(manager: SessionManager, clock: FakeClock) -> None:
    engine = engine_with(manager, clock)
    registry = AgentRegistry(engine)
    registry.register_agent("a", AgentConfig(ECHO))
    with pytest.raises(InvalidArgumentError, match="unknown agent"):
        await registry.delegate("zzz", "x")
    with pytest.raises(InvalidArgumentError, match="task"):
        await registry.delegate("a", "  ")
    with pytest.raises(LookupError):
        await registry.delegate("a", "x", parent_session_id="missing")
    parent = await manager.create()
    with pytest.raises(LookupError):
        await registry.delegate("a", "x", parent_session_id=parent.id, parent_entry_id="nope")
    assert [s.id for s in (await manager.list()).sessions] == [parent.id]
    await engine.stop()


# --- from config ----------------------------------------------------------------------

CONFIG = """
[store]
backend = "memory"

[agents.researcher]
model = "gpt-4o-mini"
provider = "openai"
system_prompt = "You find sources."
max_turns = 5
tools = ["add"]
description = "Finds sources."

[agents.coder]
system_prompt = "You write code."
"""


def test_agents_from_config() -> None:
    agents = parse_agents(tomllib.loads(CONFIG), tools={"add": add})
    assert agents["researcher"] == AgentConfig(
        ModelRef("gpt-4o-mini", provider="openai"),
        "You find sources.",
        (add,),
        5,
        "Finds sources.",
    )
    assert agents["coder"] == AgentConfig(None, "You write code.")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[agents.a]\nsystem_promt = "x"',
            "$.agents.a: unknown key 'system_promt'; did you mean 'system_prompt'?",
        ),
        ('[agents.a]\nmax_turns = "5"', "$.agents.a.max_turns: expected an integer"),
        ("[agents.a]\nmax_turns = 0", "$.agents.a: max_turns must be an integer >= 1"),
        (
            '[agents.a]\ntools = ["ad"]',
            "$.agents.a.tools[0]: unknown tool 'ad'; did you mean 'add'?",
        ),
        ('[agents."b c"]\nmodel = "x"', "$.agents.b c: agent name 'b c' is not allowed"),
        ('[agents.a]\nprovider = "openai"', "$.agents.a: 'provider' is given without 'model'"),
        ("agents = 3", "$.agents: expected a table"),
    ],
)
def test_config_errors_name_the_key_path(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_agents(tomllib.loads(toml), tools={"add": add}, source="spectra.toml")
    assert any(line.startswith(f"spectra.toml: {message}") for line in info.value.errors), (
        info.value.errors
    )


async def test_registry_from_a_config_file(
    manager: SessionManager, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "spectra.toml"
    path.write_text(CONFIG.replace('provider = "openai"', 'provider = "echo"'))
    engine = engine_with(manager, clock)
    registry = AgentRegistry.from_config(engine, path, tools={"add": add})
    assert sorted(registry.agents) == ["coder", "researcher"]
    result = await registry.delegate("researcher", "sources on rust")
    assert result.text == "echo: sources on rust"
    await engine.stop()
    with pytest.raises(ConfigError, match="not found"):
        AgentRegistry.from_config(engine, tmp_path / "missing.toml")


def test_the_config_file_accepts_agents_and_a_queue(tmp_path: Path) -> None:
    from spectra_core.config import build_queue, load_config
    from spectra_core.plugins import load_plugins
    from spectra_memory import MemoryJobQueue

    path = tmp_path / "spectra.toml"
    path.write_text(CONFIG + '\n[queue]\nbackend = "memory"\nlease_timeout = "45s"\n')
    registry = load_plugins()
    config = load_config(path, registry)
    queue = build_queue(config, registry)
    assert isinstance(queue, MemoryJobQueue) and queue.lease_timeout == 45.0
    path.write_text('[agents.a]\nmax_turns = "x"\n\n[queue]\nbackend = "memroy"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, registry)
    assert f"{path}: $.agents.a.max_turns: expected an integer" in info.value.errors[0]
    assert "did you mean 'memory'" in info.value.errors[1]
    path.write_text("[agent.a]\n")
    with pytest.raises(ConfigError, match=r"did you mean \[agents\]"):
        load_config(path, registry)
