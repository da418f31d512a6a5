"""spectra_core.agent.tools: schemas from type hints, argument checks, and a tool call that
always ends in an outcome (never an exception that ends the run or the caller's loop)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import attrs
import pytest

from spectra_core.agent.tools import Tool, ToolOutcome, schema_of, tool
from spectra_core.errors import InvalidArgumentError
from spectra_core.testing import FakeClock


def run_in_fresh_loop(make: Callable[[], Coroutine[Any, Any, ToolOutcome]]) -> ToolOutcome:
    """Run a tool call in its own event loop; anything that escapes it (SystemExit,
    KeyboardInterrupt tearing the loop down) fails the test instead of ending pytest."""
    try:
        return asyncio.run(make())
    except BaseException as exc:
        pytest.fail(f"the tool call tore down the event loop with {type(exc).__name__}")


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")


# --- schemas and validation ----------------------------------------------------------


def test_schema_from_hints_and_docstring() -> None:
    @tool
    def search(query: str, limit: int = 5, mode: Literal["fast", "exact"] = "fast") -> str:
        """Search the notes.

        More details that are not part of the description."""
        return query

    assert search.name == "search"
    assert search.description == "Search the notes."
    assert search.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer"},
            "mode": {"enum": ["fast", "exact"]},
        },
        "required": ["query"],
    }


def test_schema_of_containers_and_attrs_classes() -> None:
    @attrs.frozen
    class Point:
        x: float
        y: float = 0.0

    assert schema_of(list[int]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_of(int | None) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert schema_of(Point) == {
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        "required": ["x"],
    }
    with pytest.raises(InvalidArgumentError, match="cannot derive a JSON schema"):
        schema_of(complex)


def test_validate_names_what_is_wrong() -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    assert add.validate({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(InvalidArgumentError, match="must be a JSON object"):
        add.validate([1, 2])
    with pytest.raises(InvalidArgumentError, match="missing required argument"):
        add.validate({"a": 1})
    with pytest.raises(InvalidArgumentError, match="unknown argument"):
        add.validate({"a": 1, "b": 2, "c": 3})
    with pytest.raises(InvalidArgumentError, match="argument 'b'"):
        add.validate({"a": 1, "b": True})


async def test_arguments_that_are_not_an_object_are_an_error_result() -> None:
    @tool
    def add(a: int, b: int) -> int:
        return a + b

    for arguments in ([1, 2], "a=1", None, 3):
        outcome = await add.execute(arguments)
        assert outcome.is_error
        assert "must be a JSON object" in outcome.text


# --- a tool call always ends in an outcome --------------------------------------------


async def test_a_deeply_nested_result_is_an_error_result() -> None:
    @tool
    def deep() -> Any:
        return nested(100_000)

    outcome = await deep.execute({})
    assert outcome.is_error
    assert "nested too deeply" in outcome.text


async def test_an_exception_whose_str_raises_is_an_error_result() -> None:
    @tool
    async def broken() -> str:
        raise Unprintable

    @tool
    def broken_sync() -> str:
        raise Unprintable

    for t in (broken, broken_sync):
        outcome = await t.execute({})
        assert outcome.is_error
        assert "Unprintable" in outcome.text


@pytest.mark.parametrize("escape", [SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("timeout", [30.0, None])
def test_system_exit_and_keyboard_interrupt_in_a_tool_are_error_results(
    escape: type[BaseException], kind: str, timeout: float | None
) -> None:
    def sync_fn() -> str:
        raise escape(3)

    async def async_fn() -> str:
        raise escape(3)

    t = tool(sync_fn if kind == "sync" else async_fn, name="quitter", timeout=timeout)
    outcome = run_in_fresh_loop(lambda: t.execute({}))
    assert outcome.is_error
    assert f"tool 'quitter' failed: {escape.__name__}" in outcome.text


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cancelled_error_raised_by_the_tool_is_an_error_result(kind: str) -> None:
    def sync_fn() -> str:
        raise asyncio.CancelledError

    async def async_fn() -> str:
        raise asyncio.CancelledError

    t = tool(sync_fn if kind == "sync" else async_fn, name="canceller")
    outcome = run_in_fresh_loop(lambda: t.execute({}))
    assert outcome.is_error
    assert "CancelledError" in outcome.text


async def test_cancelling_the_caller_cancels_the_tool() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @tool
    async def slow() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    call = asyncio.ensure_future(slow.execute({}, clock=FakeClock()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_text_with_surrogates_is_stored_with_replacement_characters() -> None:
    @tool
    def text() -> str:
        return "bad \ud800 text"

    @tool
    def data() -> dict[str, Any]:
        return {"k\udfff": ["\ud83d", "fine"]}

    assert await text.execute({}) == ToolOutcome("bad \ufffd text")
    outcome = await data.execute({})
    assert not outcome.is_error
    assert outcome.text == '{"k\ufffd": ["\ufffd", "fine"]}'
    outcome.text.encode("utf-8")  # storable


async def test_an_error_message_with_surrogates_is_made_safe() -> None:
    @tool
    def fails() -> str:
        raise ValueError("bad \udc80 value")

    outcome = await fails.execute({})
    assert outcome.is_error
    assert outcome.text == "tool 'fails' failed: ValueError: bad \ufffd value"


@pytest.mark.parametrize(
    "result",
    [{1, 2}, object(), math.nan, {"x": math.inf}, {(1, 2): "tuple key"}, "huge int"],
    ids=["set", "object", "nan", "inf", "tuple-key", "huge-int"],
)
async def test_values_that_are_not_json_are_error_results(result: Any) -> None:
    value = 10**5000 if result == "huge int" else result
    t = tool(lambda: value, name="odd")
    outcome = await t.execute({})
    assert outcome.is_error
    assert "not JSON-serializable" in outcome.text


async def test_attrs_results_are_rendered_as_json() -> None:
    @attrs.frozen
    class Weather:
        city: str
        celsius: int

    t = tool(lambda: Weather("Paris", 21), name="weather")
    assert await t.execute({}) == ToolOutcome('{"city": "Paris", "celsius": 21}')


async def test_timeout_runs_on_the_given_clock() -> None:
    clock = FakeClock()
    gate = threading.Event()

    @tool(timeout=5)
    def hangs() -> str:
        gate.wait(10)
        return "late"

    call = asyncio.ensure_future(hangs.execute({}, clock=clock))
    while not call.done():
        clock.advance(1)
        await asyncio.sleep(0)
    gate.set()
    assert call.result() == ToolOutcome("tool 'hangs' timed out after 5s", True)


def test_tool_is_a_frozen_value() -> None:
    t = Tool("t", lambda: 1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        t.name = "u"  # type: ignore[misc]
