"""The adversarial world of the engine fuzz: what hostile callers, model servers, tools
and stores do, as hypothesis strategies and the provider, tools and store that act it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
from hypothesis import strategies as st

from spectra_core import (
    AssistantMessage,
    ConflictError,
    ImageContent,
    Session,
    TextContent,
    ToolCall,
    UserMessage,
)
from spectra_core.agent import (
    ModelRequest,
    ProviderDone,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)
from spectra_core.agent.tools import Tool, tool
from spectra_memory import InMemorySessionStore


class Boom(BaseException):
    """Not an Exception."""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


ERRORS: list[Callable[[], BaseException]] = [
    lambda: RuntimeError("bad \udcff thing"),
    lambda: ProviderError("overloaded", retryable=True, retry_after=1.0),
    lambda: ProviderError("bad request"),
    lambda: ValueError("nope"),
    Unprintable,
    lambda: Boom("boom"),
    lambda: SystemExit(2),
    KeyboardInterrupt,
    asyncio.CancelledError,
    lambda: RecursionError("deep"),
]


@attrs.define
class Stage:
    """Shared by the drawn provider and tools of one example."""

    hung: int = 0  # calls hanging now
    changed: asyncio.Event = attrs.field(factory=asyncio.Event)  # one started or ended
    stops: list[asyncio.Task[None]] = attrs.field(factory=list)

    async def hang(self) -> None:
        self.hung += 1
        self.changed.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.hung -= 1
            self.changed.set()


STAGE = Stage()  # replaced per example (fresh_stage), before any task uses it


def fresh_stage() -> Stage:
    global STAGE
    STAGE = Stage()
    return STAGE


@tool
def echo_back(text: str) -> str:
    """Return the text."""
    return text


@tool
def fail(kind: int) -> str:
    """Raise something."""
    raise ERRORS[kind % len(ERRORS)]()


@tool(timeout=5)
async def stall() -> str:
    """Never return."""
    await STAGE.hang()
    return "never"


@tool
def nest(depth: int) -> Any:
    """A deeply nested result."""
    value: Any = "leaf"
    for _ in range(min(max(depth, 0), 3_000)):
        value = [value]
    return value


@tool
def spam(n: int, progress: Any) -> str:
    """Many progress updates."""
    for i in range(min(max(n, 0), 2_000)):
        progress(f"step {i}")
    return "done"


@tool
def odd() -> object:
    """A result that is not JSON."""
    return object()


TOOLS: list[Tool] = [echo_back, fail, stall, nest, spam, odd]

# --- what is drawn -----------------------------------------------------------------------

any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40) | st.sampled_from(
    ["hi", "\udc80", "a\ud800b", " ", "", "x" * 50]
)
valid_text = st.text(max_size=40).map(lambda t: "q" + t)
png = base64.b64encode(b"\x89PNG....").decode()
images = st.builds(
    lambda data, mime: _unchecked(ImageContent, data, mime),
    st.sampled_from([png, png, "not base64", "", "\udc80"]),
    st.sampled_from(["image/png", "image/jpeg", "text/plain", ""]),
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn about ``weight`` times as often as weight 1."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


inputs = weighted(
    (5, valid_text),
    (
        2,
        st.builds(
            lambda text, image: UserMessage([TextContent(text), image]),
            valid_text,
            st.just(ImageContent(png, "image/png")),
        ),
    ),
    (1, any_text),
    (
        1,
        st.builds(
            lambda blocks: _unchecked(UserMessage, blocks),
            st.lists(
                st.one_of(any_text.map(lambda t: _unchecked(TextContent, t)), images),
                min_size=0,
                max_size=3,
            ),
        ),
    ),
    (1, st.sampled_from([None, 42, b"bytes", ["hi"]])),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(any_text, st.integers(), max_size=2),
)
good_values: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(
        [None, "m", {"id": "m", "provider": "chaos"}, {"id": "m", "provider": "nope"}, None]
    ),
    "system_prompt": any_text,
    "tools": st.lists(st.sampled_from(TOOLS), max_size=6, unique_by=lambda t: t.name),
    "max_turns": st.integers(1, 4),
    "tenant_id": st.sampled_from([None, "acme"]),
    "timeout_ms": st.integers(1, 60_000),
    "temperature": st.floats(0, 2),
    "max_tokens": st.integers(1, 100),
    "metadata": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
}
options = weighted(
    (3, st.none()),
    (5, st.fixed_dictionaries({}, optional=good_values)),
    (
        2,
        st.fixed_dictionaries(
            {},
            optional={k: v | anything if k != "tools" else v for k, v in good_values.items()}
            | {"bogus": anything},
        ),
    ),
    (1, anything),
)


def _unchecked(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """``cls(...)`` past the models' validators: what a provider that bypasses them hands
    the loop (the models refuse such values when built normally)."""
    with attrs.validators.disabled():
        return cls(*args, **kwargs)


tool_calls = st.builds(
    lambda *a: _unchecked(ToolCall, *a),
    st.text(max_size=4),
    st.sampled_from([t.name for t in TOOLS] + ["missing", ""]),
    st.fixed_dictionaries(
        {},
        optional={
            "text": any_text,
            "kind": st.integers(0, 20),
            "depth": st.integers(0, 3_000),
            "n": st.integers(0, 2_000),
            "junk": anything,
        },
    ),
)
final_messages = st.builds(
    lambda text, calls: _unchecked(
        AssistantMessage,
        [_unchecked(TextContent, text), *calls],
        stop_reason="tool_use" if calls else "stop",
    ),
    any_text,
    st.lists(tool_calls, max_size=2),
)
steps = st.one_of(
    st.tuples(st.just("text"), any_text),
    st.tuples(st.just("thinking"), any_text),
    st.tuples(
        st.just("call"),
        st.tuples(
            st.integers(0, 2),
            st.none() | st.text(max_size=3),
            st.none() | st.sampled_from(["echo_back", "x"]),
            st.sampled_from(['{"text": "hi"}', "[1, 2]", "{", "", '"str"', "null"]),
        ),
    ),
    st.tuples(st.just("garbage"), st.sampled_from([None, 42, "text", object()])),
    st.tuples(st.just("raise"), st.integers(0, len(ERRORS) - 1)),
    st.tuples(st.just("hang"), st.none()),
    st.tuples(st.just("done"), final_messages),
)
scripts = st.lists(st.lists(steps, max_size=5), max_size=4)
readers = st.one_of(
    st.just(("all", 0)),
    st.tuples(st.sampled_from(["leave", "abort", "stop"]), st.integers(0, 8)),
)


class FaultyStore(InMemorySessionStore):
    """The memory store, with its ``nth`` save from now on raising ``error``."""

    fault: tuple[int, BaseException] | None = None

    async def save(self, session: Session) -> None:
        if self.fault is not None:
            nth, error = self.fault
            self.fault = (nth - 1, error) if nth > 1 else None
            if nth == 1:
                raise error
        await super().save(session)


STORE_ERRORS: list[Callable[[], BaseException]] = [
    lambda: OSError(28, "No space left on device"),
    lambda: UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"),
    lambda: ConflictError("x", 1, 2),
    lambda: RuntimeError("driver bug"),
    Unprintable,
    lambda: Boom("store"),
]
store_faults = st.none() | st.tuples(st.integers(1, 6), st.integers(0, len(STORE_ERRORS) - 1))


@attrs.define
class ChaosProvider:
    """Plays one drawn script per model call, then answers "ok"."""

    script: list[list[tuple[str, Any]]]
    calls: int = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        steps = self.script[self.calls] if self.calls < len(self.script) else []
        self.calls += 1
        for kind, value in steps:
            if kind == "text":
                yield TextDelta(value)
            elif kind == "thinking":
                yield ThinkingDelta(value)
            elif kind == "call":
                index, call_id, name, args = value
                yield ToolCallDelta(index, call_id, name, args)
            elif kind == "garbage":
                yield value
            elif kind == "raise":
                raise ERRORS[value]()
            elif kind == "hang":
                await STAGE.hang()
            else:
                yield ProviderDone(value)
                return
        yield ProviderDone(AssistantMessage("ok", stop_reason="stop"))

    async def aclose(self) -> None:
        """Nothing to release."""
