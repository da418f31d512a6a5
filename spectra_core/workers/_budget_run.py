"""One delegation's run, streamed so that its budget of turns, tokens and time holds."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import SpectraError
from ..models import AssistantMessage
from ._agents import AgentConfig, Budget, BudgetLimit, DelegationResult, DelegationStatus

if TYPE_CHECKING:
    from ..engine import RunEvent, SessionEngine

__all__ = ["evolve", "run_within_budget"]


async def run_within_budget(
    engine: SessionEngine,
    agent: AgentConfig,
    session_id: str,
    user_id: str,
    tenant_id: str | None,
    task: str,
    budget: Budget,
    result: DelegationResult,
) -> DelegationResult:
    """Run ``task`` in ``session_id`` and stop it at the first limit of ``budget``:
    turns through the run options, time through the run's timeout, tokens by aborting
    the run once the model calls' reported usage passes ``max_tokens``."""
    from ..engine import EventType, RunOptions, RunStatus

    max_turns = min(agent.max_turns, budget.max_turns or agent.max_turns)
    timeout_ms = None
    if budget.deadline is not None:
        timeout_ms = max(1, math.ceil((budget.deadline - engine.clock.time()) * 1000))
    options = RunOptions(
        model=agent.model,
        system_prompt=agent.system_prompt,
        tools=agent.tools,
        max_turns=max_turns,
        tenant_id=tenant_id,
        timeout_ms=timeout_ms,
    )
    try:
        stream = await engine.run_streaming(user_id, task, session_id, options)
    except SpectraError as exc:
        return evolve(result, error=f"{type(exc).__name__}: {exc}")
    tokens = turns = 0
    over_tokens = False
    end: RunEvent | None = None
    final: AssistantMessage | None = None
    async for event in stream:
        message = event.assistant_message
        if event.type is EventType.TURN_START:
            turns += 1
        if event.type is EventType.MESSAGE_END and message is not None:
            final = message
            tokens += message.usage.total_tokens if message.usage else 0
            if budget.max_tokens is not None and tokens > budget.max_tokens:
                over_tokens = over_tokens or engine.abort_session(session_id)
        if event.type is EventType.RUN_END:
            end = event
    assert end is not None and end.status is not None
    final = end.assistant_message or final
    result = evolve(
        result,
        run_id=end.run_id,
        text=final.text if final else "",
        error=end.error,
        turns=turns,
        tokens=tokens,
    )
    status = end.status
    if over_tokens and status is RunStatus.ABORTED:
        return _exceeded(result, BudgetLimit.MAX_TOKENS, f"used {tokens} tokens")
    if status is RunStatus.TIMED_OUT and budget.deadline is not None:
        return _exceeded(result, BudgetLimit.DEADLINE, end.error or "timed out")
    if status is RunStatus.COMPLETED:
        if final is not None and final.tool_calls:
            return _exceeded(result, BudgetLimit.MAX_TURNS, f"stopped after {max_turns} turn(s)")
        return evolve(result, status=DelegationStatus.COMPLETED)
    mapped = {
        RunStatus.ABORTED: DelegationStatus.ABORTED,
        RunStatus.RATE_LIMITED: DelegationStatus.RATE_LIMITED,
    }.get(status, DelegationStatus.FAILED)
    return evolve(result, status=mapped)


def evolve(result: DelegationResult, **changes: Any) -> DelegationResult:
    return attrs.evolve(result, **changes)


def _exceeded(result: DelegationResult, limit: BudgetLimit, why: str) -> DelegationResult:
    return evolve(
        result,
        status=DelegationStatus.BUDGET_EXCEEDED,
        budget_exceeded=limit,
        error=f"budget exceeded ({limit.value}): {why}",
    )
