"""What a run is given (RunOptions) and what it returns (RunResult)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..agent.tools import Tool
from ..models import AssistantMessage, ModelRef
from ..serde import converter
from .events import RunStatus

__all__ = ["RunOptions", "RunResult"]


def _model(value: ModelRef | Mapping[str, Any] | str | None) -> ModelRef | None:
    if value is None or isinstance(value, ModelRef):
        return value
    if isinstance(value, str):
        return ModelRef(value)
    return converter.structure(dict(value), ModelRef)


@attrs.frozen(kw_only=True)
class RunOptions:
    """Per-run settings, as in the original's ``run(userId, input, sessionId, options)``.

    ``model`` may be a ModelRef, a dict like ``{"id": "gpt-4o", "provider": "openai"}``
    or a model id. A new session takes ``model`` and ``system_prompt`` as its config; an
    existing session records a ``model_change`` when ``model`` differs from its own.
    """

    model: ModelRef | None = attrs.field(default=None, converter=_model)
    system_prompt: str | None = None
    tools: Sequence[Tool] = ()
    max_turns: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    tenant_id: str | None = None
    timeout_ms: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def coerce(cls, value: RunOptions | Mapping[str, Any] | None) -> RunOptions:
        if value is None:
            return cls()
        if isinstance(value, RunOptions):
            return value
        return cls(**dict(value))


@attrs.frozen(kw_only=True)
class RunResult:
    """The outcome of :meth:`SessionEngine.run`."""

    session_id: str
    run_id: str
    status: RunStatus
    final_message: AssistantMessage | None
    error: str | None = None
    turns: int = 0

    @property
    def text(self) -> str:
        """The final answer's text ('' if there is none)."""
        return self.final_message.text if self.final_message else ""
