"""Tools the model can call: Python callables with a name, a description and a JSON schema.

``@tool`` derives the schema from type hints and validates arguments by structuring them
into those types with cattrs; a tool given an explicit schema gets the schema's
required keys and basic types checked. Errors, timeouts and unserialisable results are
returned to the model as error results; they never crash a run. That holds for any
exception, including ``SystemExit``, ``KeyboardInterrupt`` and ``CancelledError`` raised
by the tool itself (not by an abort of the run), an exception whose ``str()`` raises, a
result too deeply nested to encode, and text holding surrogates (replaced by U+FFFD).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import attrs
import cattrs

from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError
from ._clean import describe_exception, replace_surrogates
from .provider import ToolSpec

__all__ = ["PROGRESS_PARAMETER", "Tool", "ToolOutcome", "tool"]

#: A tool function with a parameter of this name receives a callback to report progress.
PROGRESS_PARAMETER = "progress"

_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_converter = cattrs.Converter()
for _t, _label in ((str, "a string"), (int, "an integer"), (bool, "true or false")):

    def _strict(v: Any, _: Any, t: type[Any] = _t, label: str = _label) -> Any:
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            raise TypeError(f"expected {label}, got {v!r}")
        return v

    _converter.register_structure_hook(_t, _strict)


def _float(v: Any, _: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {v!r}")
    return float(v)


_converter.register_structure_hook(float, _float)


def schema_of(annotation: Any) -> dict[str, Any]:
    """A JSON schema for a type hint (str, int, float, bool, None, list, dict, Literal,
    unions and optionals, attrs classes)."""
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_of(a) for a in args]}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        item = args[0] if args else Any
        return {"type": "array", "items": schema_of(item)}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if attrs.has(annotation):
        hints = get_type_hints(annotation)
        props = {a.name: schema_of(hints.get(a.name, Any)) for a in attrs.fields(annotation)}
        required = [a.name for a in attrs.fields(annotation) if a.default is attrs.NOTHING]
        return {"type": "object", "properties": props, "required": required}
    raise InvalidArgumentError(f"cannot derive a JSON schema for type {annotation!r}")


@attrs.frozen
class ToolOutcome:
    """What a tool call produced: text for the model and whether it is an error."""

    text: str
    is_error: bool = False


@attrs.frozen
class Tool:
    """A callable the model may invoke. ``fn`` may be sync (run in a thread) or async."""

    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: dict[str, Any] = attrs.field(factory=dict)
    timeout: float | None = 30.0
    _hints: Mapping[str, Any] | None = attrs.field(default=None, alias="hints")

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Checked, structured keyword arguments, or InvalidArgumentError saying what is wrong."""
        if not isinstance(arguments, dict):
            raise InvalidArgumentError(f"arguments must be a JSON object, got {arguments!r}")
        props: dict[str, Any] = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        if missing:
            raise InvalidArgumentError(f"missing required argument(s): {', '.join(missing)}")
        if self.parameters.get("additionalProperties", True) is False or self._hints:
            extra = sorted(set(arguments) - set(props))
            if extra:
                raise InvalidArgumentError(f"unknown argument(s): {', '.join(extra)}")
        if not self._hints:
            for key, value in arguments.items():
                expected = props.get(key, {}).get("type")
                if expected and not _matches(value, expected):
                    raise InvalidArgumentError(f"argument {key!r}: expected {expected}")
            return dict(arguments)
        out = {}
        for key, value in arguments.items():
            try:
                out[key] = _converter.structure(value, self._hints[key])
            except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
                why = (
                    "; ".join(cattrs.transform_error(exc))
                    if isinstance(exc, cattrs.BaseValidationError)
                    else str(exc)
                )
                raise InvalidArgumentError(f"argument {key!r}: {why}") from None
        return out

    @property
    def reports_progress(self) -> bool:
        """Whether ``fn`` takes a ``progress`` callback (not part of the model's schema)."""
        return PROGRESS_PARAMETER in inspect.signature(self.fn).parameters

    async def execute(
        self,
        arguments: Any,
        progress: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> ToolOutcome:
        """Validate, run with the timeout, and render the result as text for the model.

        Never raises, except ``CancelledError`` when the calling task is cancelled."""
        try:
            kwargs = self.validate(arguments)
        except InvalidArgumentError as exc:
            return self._error(f"invalid arguments for tool {self.name!r}: {exc}")
        except Exception as exc:  # e.g. RecursionError structuring a deep value
            return self._error(
                f"invalid arguments for tool {self.name!r}: {describe_exception(exc)}"
            )
        if progress is not None and self.reports_progress:
            kwargs[PROGRESS_PARAMETER] = progress
        try:
            result = await _with_timeout(self._call(kwargs), self.timeout, clock or SystemClock())
        except TimeoutError:
            return self._error(f"tool {self.name!r} timed out after {self.timeout:g}s")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the run is being aborted
            return self._error(f"tool {self.name!r} failed: it raised CancelledError")
        except _Escaped as exc:
            return self._error(f"tool {self.name!r} failed: {describe_exception(exc.inner)}")
        except Exception as exc:
            return self._error(f"tool {self.name!r} failed: {describe_exception(exc)}")
        return _render(self.name, result)

    def _error(self, text: str) -> ToolOutcome:
        return ToolOutcome(replace_surrogates(text), True)

    async def _call(self, kwargs: dict[str, Any]) -> Any:
        """Run ``fn``: a coroutine function on the loop, anything else in a thread. An
        exception the event loop would not contain (``SystemExit``, ``KeyboardInterrupt``,
        which a task re-raises out of the loop) comes out as :class:`_Escaped`."""
        if not inspect.iscoroutinefunction(self.fn):
            return await asyncio.to_thread(_call_in_thread, self.fn, kwargs)
        try:
            return await self.fn(**kwargs)
        except (SystemExit, KeyboardInterrupt) as exc:
            raise _Escaped(exc) from exc


class _Escaped(Exception):
    """A tool raised a BaseException that must not leave its task (the original is
    ``inner``)."""

    def __init__(self, inner: BaseException) -> None:
        super().__init__(type(inner).__name__)
        self.inner = inner


def _call_in_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(**kwargs)
    except Exception:
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, CancelledError...
        raise _Escaped(exc) from exc


async def _with_timeout(call: Awaitable[Any], seconds: float | None, clock: Clock) -> Any:
    """Await ``call``, raising TimeoutError after ``seconds`` of ``clock`` time; the call
    is cancelled if the caller is."""
    if seconds is None:
        return await call
    work = asyncio.ensure_future(call)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the caller is cancelled (the run aborted): stop the tool too
        work.cancel()
        raise
    finally:
        timer.cancel()
    if not work.done():
        work.cancel()
        raise TimeoutError
    return work.result()


def _matches(value: Any, expected: str | list[str]) -> bool:
    kinds = [expected] if isinstance(expected, str) else expected
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    return any(checks.get(k, lambda v: True)(value) for k in kinds)


def _render(name: str, result: Any) -> ToolOutcome:
    """The result as text for the model: a string as it is, anything else as JSON
    (surrogates replaced); a value that cannot be encoded is an error result."""
    try:
        if isinstance(result, str):
            return ToolOutcome(replace_surrogates(result))
        if attrs.has(type(result)):
            result = attrs.asdict(result)
        return ToolOutcome(
            replace_surrogates(json.dumps(result, ensure_ascii=False, allow_nan=False))
        )
    except RecursionError:
        why = "it is nested too deeply to encode"
    except (TypeError, ValueError) as exc:
        why = describe_exception(exc)
    except Exception as exc:  # a __getattr__, __iter__... of the result that raised
        why = f"encoding it raised {describe_exception(exc)}"
    return ToolOutcome(
        replace_surrogates(
            f"tool {name!r} returned a value that is not JSON-serializable "
            f"({type(result).__name__}): {why}"
        ),
        True,
    )


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = 30.0,
) -> Any:
    """Make a :class:`Tool` from a function; usable as ``@tool`` or ``@tool(name=...)``.

    Without ``parameters`` the JSON schema is derived from the type hints, and the first
    paragraph of the docstring is the description.
    """

    def make(f: Callable[..., Any]) -> Tool:
        doc = (inspect.getdoc(f) or "").split("\n\n")[0].strip()
        if parameters is not None:
            return Tool(name or f.__name__, f, description or doc, parameters, timeout)
        hints = typing.get_type_hints(f)
        sig = inspect.signature(f)
        props: dict[str, Any] = {}
        required = []
        arg_hints: dict[str, Any] = {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == PROGRESS_PARAMETER:
                continue
            hint = hints.get(p.name, Any)
            arg_hints[p.name] = hint
            props[p.name] = schema_of(hint)
            if p.default is p.empty:
                required.append(p.name)
        schema = {"type": "object", "properties": props, "required": required}
        return Tool(name or f.__name__, f, description or doc, schema, timeout, hints=arg_hints)

    return make(fn) if fn is not None else make
