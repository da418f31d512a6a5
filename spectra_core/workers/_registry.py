"""AgentRegistry: specialist agents, delegation under a budget, parallel delegation."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ..agent.tools import Tool
from ..errors import ConflictError, InvalidArgumentError
from ..ids import validate_id
from ..models import Session, SessionConfig
from ..plugins import closest
from ._agents import (
    AgentConfig,
    Budget,
    BudgetLimit,
    DelegationResult,
    DelegationStatus,
    check_budget,
    check_task,
    validate_agent_name,
)
from ._budget_run import evolve, run_within_budget

if TYPE_CHECKING:
    from ..engine import SessionEngine

__all__ = ["DELEGATION_FINISHED", "DELEGATION_STARTED", "AgentRegistry"]

log = structlog.get_logger("spectra.agents")

#: Audit entries a delegation appends to its parent session.
DELEGATION_STARTED = "delegation_started"
DELEGATION_FINISHED = "delegation_finished"
#: Key of the child session's ``config.metadata`` that records where it came from.
METADATA_KEY = "delegation"
_SAVE_TRIES = 5


class AgentRegistry:
    """Named specialist agents that tasks are delegated to, each delegation a session of
    its own run through ``engine`` (limits, breaker, persistence and events apply).

    A delegation's session records in ``config.metadata["delegation"]`` the parent
    session and entry it came from; the parent gets ``delegation_started`` and
    ``delegation_finished`` audit entries (unless the parent is the session whose run
    called the delegation tool: that run owns it, and its tool result is the record).
    Delegations without a parent belong to ``user_id``.
    """

    def __init__(
        self,
        engine: SessionEngine,
        *,
        user_id: str = "agents",
        tenant_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.user_id = user_id
        self.tenant_id = tenant_id
        self._agents: dict[str, AgentConfig] = {}
        self._parent_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_config(
        cls,
        engine: SessionEngine,
        config: Mapping[str, Any] | str | os.PathLike[str],
        *,
        tools: Mapping[str, Tool] | None = None,
        user_id: str = "agents",
        tenant_id: str | None = None,
    ) -> AgentRegistry:
        """A registry with the ``[agents.<name>]`` tables of a parsed config document or
        a TOML file; ``tools`` maps the tool names those tables use to tools."""
        from ._agents_config import load_agents, parse_agents

        agents = (
            parse_agents(config, tools=tools or {})
            if isinstance(config, Mapping)
            else load_agents(config, tools=tools or {})
        )
        registry = cls(engine, user_id=user_id, tenant_id=tenant_id)
        for name, agent in agents.items():
            registry.register_agent(name, agent)
        return registry

    # --- agents -----------------------------------------------------------------------

    def register_agent(self, name: str, config: AgentConfig) -> None:
        """Add an agent under ``name`` (InvalidArgumentError if the name is taken)."""
        validate_agent_name(name)
        if not isinstance(config, AgentConfig):
            raise InvalidArgumentError(
                f"agent {name!r}: config must be an AgentConfig, got {type(config).__name__}"
            )
        if name in self._agents:
            raise InvalidArgumentError(f"agent {name!r} is already registered")
        self._agents[name] = config

    @property
    def agents(self) -> Mapping[str, AgentConfig]:
        return dict(self._agents)

    def get_agent(self, name: str) -> AgentConfig:
        agent = self._agents.get(name)
        if agent is None:
            guess = closest(name, self._agents) if isinstance(name, str) else None
            hint = f"; did you mean {guess!r}?" if guess else ""
            known = ", ".join(repr(n) for n in sorted(self._agents)) or "none registered"
            raise InvalidArgumentError(f"unknown agent {name!r}{hint} (agents: {known})")
        return agent

    # --- delegating -------------------------------------------------------------------

    async def delegate(
        self,
        agent_type: str,
        task: str,
        budget: Budget | None = None,
        *,
        parent_session_id: str | None = None,
        parent_entry_id: str | None = None,
    ) -> DelegationResult:
        """Run ``task`` with the agent ``agent_type`` in a new session, within ``budget``.

        Bad arguments (unknown agent, empty task, unknown parent session or entry) raise;
        every outcome of the run itself, failures included, is in the result.
        """
        return await self._delegate(
            agent_type, task, budget, parent_session_id, parent_entry_id, audit=True
        )

    async def execute_parallel(
        self,
        tasks: Sequence[Mapping[str, Any]],
        max_concurrency: int = 4,
        *,
        budget: Budget | None = None,
        parent_session_id: str | None = None,
    ) -> list[DelegationResult]:
        """Run many delegations, at most ``max_concurrency`` at once; results in the
        order of ``tasks``. Each task is ``{"agent_type": ..., "task": ...}`` with an
        optional ``"budget"`` (default: ``budget``). Every task is checked before any
        runs; once running, one failing does not stop the others (its result says why).
        """
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise InvalidArgumentError(
                f"max_concurrency must be an integer, got {max_concurrency!r}"
            )
        if max_concurrency < 1:
            raise InvalidArgumentError(f"max_concurrency must be >= 1, got {max_concurrency}")
        check_budget(budget)
        plan = [self._check_item(i, item, budget) for i, item in enumerate(tasks)]
        if parent_session_id is not None:
            await self._parent(parent_session_id, None)
        gate = asyncio.Semaphore(max_concurrency)

        async def one(agent_type: str, text: str, own: Budget | None) -> DelegationResult:
            async with gate:
                try:
                    return await self._delegate(
                        agent_type, text, own, parent_session_id, None, audit=True
                    )
                except Exception as exc:  # reported per task; the others go on
                    return DelegationResult(
                        agent_type=agent_type,
                        task=text,
                        status=DelegationStatus.FAILED,
                        error=f"{type(exc).__name__}: {exc}",
                    )

        return list(await asyncio.gather(*(one(*p) for p in plan)))

    def as_tool(
        self,
        agent_type: str,
        *,
        name: str | None = None,
        budget: Budget | None = None,
        parent_session_id: str | None = None,
    ) -> Tool:
        """A tool through which a model delegates a task to ``agent_type``.

        The tool takes ``{"task": "..."}`` and returns the delegation's result as JSON.
        Its parent is ``parent_session_id`` or else the session whose run calls it.
        """
        agent = self.get_agent(agent_type)
        check_budget(budget)

        async def delegate_task(task: str) -> dict[str, Any]:
            parent = parent_session_id or structlog.contextvars.get_contextvars().get("session_id")
            running = parent_session_id is None and parent is not None
            result = await self._delegate(agent_type, task, budget, parent, None, audit=not running)
            return result.to_dict()

        return Tool(
            name or f"delegate_to_{agent_type}",
            delegate_task,
            agent.description
            or f"Delegate a task to the {agent_type!r} agent; returns its answer.",
            {
                "type": "object",
                "properties": {"task": {"type": "string", "description": "What to do."}},
                "required": ["task"],
            },
            timeout=None,
        )

    # --- internals --------------------------------------------------------------------

    def _check_item(
        self, index: int, item: Any, default: Budget | None
    ) -> tuple[str, str, Budget | None]:
        where = f"tasks[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidArgumentError(f"{where} must be a mapping, got {type(item).__name__}")
        unknown = set(item) - {"agent_type", "task", "budget"}
        if unknown:
            raise InvalidArgumentError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        agent_type = item.get("agent_type")
        try:
            self.get_agent(agent_type)  # type: ignore[arg-type]
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{where}.agent_type: {exc}") from None
        task = check_task(item.get("task"), f"{where}.task")
        own = check_budget(item.get("budget", default), f"{where}.budget")
        return str(agent_type), task, own

    async def _parent(self, session_id: str, entry_id: str | None) -> Session:
        validate_id(session_id, "parent session id")
        parent = await self.engine.session_manager.load(session_id)
        if entry_id is not None:
            parent.get_entry(entry_id)
        return parent

    async def _delegate(
        self,
        agent_type: str,
        task: str,
        budget: Budget | None,
        parent_id: str | None,
        parent_entry_id: str | None,
        *,
        audit: bool,
    ) -> DelegationResult:
        agent = self.get_agent(agent_type)
        check_task(task)
        check_budget(budget)
        budget = budget or Budget()
        parent = await self._parent(parent_id, parent_entry_id) if parent_id else None
        origin = parent_entry_id or (parent.leaf_id if parent else None)
        clock = self.engine.clock
        result = DelegationResult(agent_type=agent_type, task=task, status=DelegationStatus.FAILED)
        if budget.deadline is not None and budget.deadline <= clock.time():
            return evolve(
                result,
                status=DelegationStatus.BUDGET_EXCEEDED,
                budget_exceeded=BudgetLimit.DEADLINE,
                error="the deadline had passed before the delegation started",
            )
        manager = self.engine.session_manager
        user_id = (parent.user_id if parent else None) or self.user_id
        tenant_id = (parent.tenant_id if parent else None) or self.tenant_id
        provenance = {
            "agent_type": agent_type,
            "parent_session_id": parent.id if parent else None,
            "parent_entry_id": origin,
        }
        child = await manager.create(
            SessionConfig(
                model=agent.model,
                system_prompt=agent.system_prompt,
                metadata={METADATA_KEY: provenance},
            ),
            user_id=user_id,
            tenant_id=tenant_id,
        )
        result = evolve(result, session_id=child.id)
        details = {"child_session_id": child.id, "agent_type": agent_type, "task": task}
        if parent is not None and audit:
            await self._audit(
                parent.id, DELEGATION_STARTED, {**details, "budget": budget.to_dict()}
            )
        try:
            result = await run_within_budget(
                self.engine, agent, child.id, user_id, tenant_id, task, budget, result
            )
        finally:
            if parent is not None and audit:
                await asyncio.shield(
                    self._audit(
                        parent.id,
                        DELEGATION_FINISHED,
                        {
                            **details,
                            "status": result.status.value,
                            "error": result.error,
                            "turns": result.turns,
                            "tokens": result.tokens,
                            "budget_exceeded": result.budget_exceeded,
                        },
                    )
                )
        log.info(
            "delegation finished",
            agent_type=agent_type,
            session_id=child.id,
            status=result.status.value,
            budget_exceeded=result.budget_exceeded,
        )
        return result

    async def _audit(self, session_id: str, event_type: str, details: dict[str, Any]) -> None:
        """Append an audit entry to the parent, reloading on a concurrent save."""
        manager = self.engine.session_manager
        lock = self._parent_locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            for attempt in range(1, _SAVE_TRIES + 1):
                parent = await manager.load(session_id, active_branch=True)
                manager.append_audit(parent, event_type, details)
                try:
                    await manager.save(parent)
                    return
                except ConflictError:
                    if attempt == _SAVE_TRIES:
                        raise
