"""What a run is given (RunOptions) and what it returns (RunResult).

Every option is checked when :class:`RunOptions` is built, so a run with a bad option is
refused with an :class:`~spectra_core.InvalidArgumentError` naming the option before the
engine claims anything for it.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..agent.tools import Tool
from ..errors import InvalidArgumentError
from ..models import AssistantMessage, ModelRef
from ..serde import converter
from ..text import check_text, unencodable_at
from .events import RunStatus

__all__ = ["MAX_TENANT_ID_LENGTH", "RunOptions", "RunResult"]

#: Longest tenant id a run accepts (it keys rate limits and is stored with the session).
MAX_TENANT_ID_LENGTH = 256


def _bad(name: str, expected: str, value: object) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"run option {name!r}: expected {expected}, got {_show(value)} ({type(value).__name__})"
    )


def _show(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return "a value"
    return text if len(text) <= 60 else text[:57] + "..."


def _model(value: object) -> ModelRef | None:
    if value is None or isinstance(value, ModelRef):
        model = value
    elif isinstance(value, str):
        model = ModelRef(value)
    elif isinstance(value, Mapping):
        try:
            model = converter.structure(dict(value), ModelRef)
        except Exception as exc:
            raise InvalidArgumentError(f"run option 'model': {_describe(exc)}") from None
    else:
        raise _bad("model", "a ModelRef, a dict with an 'id' or a model id", value)
    if model is not None:
        for field in ("id", "provider", "name", "api"):
            part = getattr(model, field, None)
            if part is not None:
                check_text(part, f"run option 'model.{field}'")
        if not model.id:
            raise InvalidArgumentError("run option 'model': the model id is empty")
        _json_object("model.options", model.options)
    return model


def _describe(exc: BaseException) -> str:
    notes = [str(e) for e in getattr(exc, "exceptions", ())]
    try:
        text = str(exc)
    except Exception:
        text = type(exc).__name__
    return "; ".join([text, *notes]) if notes else text


def _text(name: str) -> Any:
    def check(_: Any, __: Any, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise _bad(name, "a string", value)
        check_text(value, f"run option {name!r}")

    return check


def _tenant(_: Any, __: Any, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise _bad("tenant_id", "a non-empty string", value)
    check_text(value, "run option 'tenant_id'")
    if "\x00" in value or len(value) > MAX_TENANT_ID_LENGTH:
        raise InvalidArgumentError(
            f"run option 'tenant_id': at most {MAX_TENANT_ID_LENGTH} characters, no NUL"
        )


def _positive_int(name: str, optional: bool) -> Any:
    def check(_: Any, __: Any, value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, "a positive integer", value)
        if value < 1:
            raise InvalidArgumentError(f"run option {name!r}: must be at least 1, got {value}")

    return check


def _timeout(_: Any, __: Any, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("timeout_ms", "a number of milliseconds", value)
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(
            f"run option 'timeout_ms': must be a positive, finite number, got {value}"
        )


def _temperature(_: Any, __: Any, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("temperature", "a number", value)
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(
            f"run option 'temperature': must be a finite number >= 0, got {value}"
        )


def _tools(value: object) -> tuple[Tool, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise _bad("tools", "a list of Tool", value)
    names: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, Tool):
            raise InvalidArgumentError(
                f"run option 'tools[{i}]': expected a Tool (decorate the function with "
                f"@tool), got {type(item).__name__}"
            )
        if item.name in names:
            raise InvalidArgumentError(f"run option 'tools': two tools are named {item.name!r}")
        names.add(item.name)
    return tuple(value)


def _metadata(value: object) -> Mapping[str, Any]:
    return _json_object("metadata", value)


def _json_object(name: str, value: object) -> dict[str, Any]:
    """A dict a store can write as JSON, or InvalidArgumentError naming the option."""
    if not isinstance(value, Mapping):
        raise _bad(name, "a dict", value)
    if not all(isinstance(k, str) for k in value):
        raise InvalidArgumentError(f"run option {name!r}: keys must be strings")
    try:
        text = json.dumps(dict(value), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(
            f"run option {name!r}: must be JSON-serializable: {_describe(exc)}"
        ) from None
    if unencodable_at(text) is not None:
        raise InvalidArgumentError(
            f"run option {name!r}: holds a lone surrogate, which UTF-8 cannot encode"
        )
    return dict(value)


@attrs.frozen(kw_only=True)
class RunOptions:
    """Per-run settings, as in the original's ``run(userId, input, sessionId, options)``.

    ``model`` may be a ModelRef, a dict like ``{"id": "gpt-4o", "provider": "openai"}``
    or a model id. A new session takes ``model`` and ``system_prompt`` as its config; an
    existing session records a ``model_change`` when ``model`` differs from its own.
    A bad value raises :class:`~spectra_core.InvalidArgumentError` naming the option.
    """

    model: ModelRef | None = attrs.field(default=None, converter=_model)
    system_prompt: str | None = attrs.field(default=None, validator=_text("system_prompt"))
    tools: Sequence[Tool] = attrs.field(default=(), converter=_tools)
    max_turns: int = attrs.field(default=10, validator=_positive_int("max_turns", False))
    tenant_id: str | None = attrs.field(default=None, validator=_tenant)
    timeout_ms: float | None = attrs.field(default=None, validator=_timeout)
    temperature: float | None = attrs.field(default=None, validator=_temperature)
    max_tokens: int | None = attrs.field(default=None, validator=_positive_int("max_tokens", True))
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_metadata)

    @classmethod
    def coerce(cls, value: object) -> RunOptions:
        """``value`` as RunOptions (None: the defaults); InvalidArgumentError naming the
        option for an unknown key or a bad value."""
        if value is None:
            return cls()
        if isinstance(value, RunOptions):
            return value
        if not isinstance(value, Mapping):
            raise InvalidArgumentError(
                f"options must be a RunOptions or a dict, got {type(value).__name__}"
            )
        known = [a.name for a in attrs.fields(cls)]
        for key in value:
            if key not in known:
                name = key if isinstance(key, str) else repr(key)
                guess = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {guess[0]!r}?" if guess else ""
                raise InvalidArgumentError(
                    f"unknown run option {_show(name)}{hint} (valid: {', '.join(known)})"
                )
        try:
            return cls(**dict(value))
        except InvalidArgumentError:
            raise
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidArgumentError(f"run options: {_describe(exc)}") from None


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
