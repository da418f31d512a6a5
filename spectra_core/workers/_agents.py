"""Agent definitions, budgets and delegation results (what the AgentRegistry works with)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import attrs

from ..agent.tools import Tool
from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError
from ..models import ModelRef
from ..serde import converter

__all__ = [
    "AgentConfig",
    "Budget",
    "BudgetLimit",
    "DelegationResult",
    "DelegationStatus",
    "validate_agent_name",
]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_agent_name(name: object) -> str:
    """An agent name: 1-64 letters, digits, ``_`` or ``-`` (it becomes part of a tool name)."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidArgumentError(
            f"agent name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-'"
        )
    return name


def _model(value: ModelRef | Mapping[str, Any] | str | None) -> ModelRef | None:
    if value is None or isinstance(value, ModelRef):
        return value
    if isinstance(value, str):
        return ModelRef(value)
    return converter.structure(dict(value), ModelRef)


def _tools(value: Any) -> tuple[Tool, ...]:
    return tuple(value)


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidArgumentError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class AgentConfig:
    """A specialist agent: its model, system prompt, tools and turn limit.

    ``model`` is a ModelRef, a dict like ``{"id": "gpt-4o-mini", "provider": "openai"}``
    or a model id (the engine's default provider). ``description`` tells a model what
    the agent is for when it is offered as a tool (:meth:`AgentRegistry.as_tool`).
    """

    model: ModelRef | None = attrs.field(default=None, converter=_model)
    system_prompt: str | None = None
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tools)
    max_turns: int = attrs.field(default=10)
    description: str = ""

    @max_turns.validator
    def _check_turns(self, _: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"max_turns must be an integer >= 1, got {value!r}")

    @tools.validator
    def _check_tools(self, _: object, value: tuple[Any, ...]) -> None:
        for t in value:
            if not isinstance(t, Tool):
                raise InvalidArgumentError(f"tools must be Tool objects (use @tool), got {t!r}")


@attrs.frozen(kw_only=True)
class Budget:
    """Limits of one delegation: model turns, tokens (input + output, summed over the
    run's model calls) and a ``deadline`` (the clock's epoch seconds). The run stops at
    the first limit reached; tokens are counted as each model call ends, so the call
    that crosses ``max_tokens`` is the last."""

    max_turns: int | None = attrs.field(default=None, validator=_positive_or_none)
    max_tokens: int | None = attrs.field(default=None, validator=_positive_or_none)
    deadline: float | None = attrs.field(default=None)

    @classmethod
    def within(
        cls,
        seconds: float,
        *,
        clock: Clock | None = None,
        max_turns: int | None = None,
        max_tokens: int | None = None,
    ) -> Budget:
        """A budget whose deadline is ``seconds`` from now."""
        if seconds <= 0:
            raise InvalidArgumentError(f"seconds must be positive, got {seconds}")
        now = (clock or SystemClock()).time()
        return cls(max_turns=max_turns, max_tokens=max_tokens, deadline=now + seconds)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


class DelegationStatus(StrEnum):
    """How a delegation ended."""

    COMPLETED = "completed"
    BUDGET_EXCEEDED = "budget_exceeded"  # stopped at a limit of its Budget
    FAILED = "failed"
    ABORTED = "aborted"
    RATE_LIMITED = "rate_limited"


class BudgetLimit(StrEnum):
    """Which limit stopped a delegation."""

    MAX_TURNS = "max_turns"
    MAX_TOKENS = "max_tokens"
    DEADLINE = "deadline"


@attrs.frozen(kw_only=True)
class DelegationResult:
    """The outcome of one delegated task. ``session_id`` is the delegation's own session
    (None if it never started); ``text`` its final answer so far; ``budget_exceeded``
    the limit that stopped it, if any; ``tokens`` the tokens its model calls used."""

    agent_type: str
    task: str
    status: DelegationStatus
    session_id: str | None = None
    run_id: str | None = None
    text: str = ""
    error: str | None = None
    turns: int = 0
    tokens: int = 0
    budget_exceeded: BudgetLimit | None = None

    @property
    def ok(self) -> bool:
        return self.status is DelegationStatus.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (what a delegation tool returns to the model)."""
        return {
            "agent_type": self.agent_type,
            "status": self.status.value,
            "session_id": self.session_id,
            "text": self.text,
            "error": self.error,
            "turns": self.turns,
            "tokens": self.tokens,
            "budget_exceeded": self.budget_exceeded.value if self.budget_exceeded else None,
        }


def check_task(task: object, where: str = "task") -> str:
    if not isinstance(task, str) or not task.strip():
        raise InvalidArgumentError(f"{where} must be a non-empty string, got {task!r}")
    return task


def check_budget(budget: object, where: str = "budget") -> Budget | None:
    if budget is not None and not isinstance(budget, Budget):
        raise InvalidArgumentError(f"{where} must be a Budget, got {type(budget).__name__}")
    return budget
