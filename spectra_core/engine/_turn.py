"""One run's agent loop: call the model, stream its message, run the tools it asks for,
persist each message as it completes, until no tool calls remain or ``max_turns``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import stamina

from ..agent._clean import checked_reply, describe_exception, replace_surrogates
from ..agent.provider import (
    ModelProvider,
    ModelRequest,
    ProviderDone,
    ProviderError,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)
from ..agent.tools import Tool, ToolOutcome
from ..clock import Clock
from ..manager import SessionManager
from ..models import AssistantMessage, Session, ToolCall, ToolResultMessage
from ._partial import MessageBuilder, StreamDelta
from .events import EventType

__all__ = ["AgentLoop", "RetryPolicy", "retry_backoff"]

Emit = Callable[..., None]


def retry_backoff(exc: Exception) -> bool | float:
    """stamina backoff hook: retry retryable provider errors, waiting what they asked."""
    if isinstance(exc, ProviderError) and exc.retryable:
        return exc.retry_after if exc.retry_after is not None else True
    return False


class RetryPolicy:
    """How model calls are retried (with stamina): attempts, total time, backoff bounds."""

    def __init__(
        self,
        attempts: int = 3,
        timeout: float = 60.0,
        wait_initial: float = 0.5,
        wait_max: float = 10.0,
    ) -> None:
        self.attempts = attempts
        self.timeout = timeout
        self.wait_initial = wait_initial
        self.wait_max = wait_max


class AgentLoop:
    """Runs the turns of one run; see the module docstring."""

    def __init__(
        self,
        *,
        manager: SessionManager,
        session: Session,
        provider: ModelProvider,
        request: ModelRequest,
        tools: Mapping[str, Tool],
        max_turns: int,
        emit: Emit,
        guard: Callable[[Callable[[], Any]], Any],
        retry: RetryPolicy,
        clock: Clock,
    ) -> None:
        self.manager = manager
        self.session = session
        self.provider = provider
        self.base_request = request
        self.tools = tools
        self.max_turns = max_turns
        self.emit = emit
        self.guard = guard
        self.retry = retry
        self.clock = clock
        self.partial: MessageBuilder | None = None
        self.turns = 0
        self.final: AssistantMessage | None = None

    async def run(self) -> AssistantMessage | None:
        self.emit(EventType.AGENT_START)
        for turn in range(1, self.max_turns + 1):
            self.turns = turn
            self.emit(EventType.TURN_START, turn=turn)
            message = await self._model_turn(turn)
            self.final = message
            calls = message.tool_calls
            results = []
            for call in calls:
                results.append(await self._run_tool(call, turn))
            self.emit(EventType.TURN_END, turn=turn, message=message)
            if not calls:
                break
        self.emit(EventType.AGENT_END, message=self.final)
        return self.final

    # --- the model --------------------------------------------------------------------

    def _request(self) -> ModelRequest:
        ctx = self.manager.build_context(self.session)
        r = self.base_request
        return ModelRequest(
            model=r.model,
            system_prompt=r.system_prompt if r.system_prompt is not None else ctx.system_prompt,
            messages=ctx.messages,
            tools=r.tools,
            temperature=r.temperature,
            max_tokens=r.max_tokens,
        )

    async def _model_turn(self, turn: int) -> AssistantMessage:
        request = self._request()
        message = await self._call_with_retries(request, turn)
        self.partial = None
        self.manager.append_message(self.session, message)
        await self.manager.save(self.session)
        self.emit(EventType.MESSAGE_END, turn=turn, message=message)
        return message

    async def _call_with_retries(self, request: ModelRequest, turn: int) -> AssistantMessage:
        """Call the model; retry retryable failures with stamina. The first attempt runs
        outside stamina (most calls succeed); its failure is replayed as stamina's first
        attempt so the backoff, Retry-After included, applies from there."""
        try:
            result: AssistantMessage = await self.guard(lambda: self._stream(request, turn))
            return result
        except Exception as exc:
            if retry_backoff(exc) is False:
                raise
            failure: Exception | None = exc
        async for attempt in stamina.retry_context(
            on=retry_backoff,
            attempts=self.retry.attempts,
            timeout=self.retry.timeout,
            wait_initial=self.retry.wait_initial,
            wait_max=self.retry.wait_max,
        ):
            with attempt:
                if failure is not None:
                    replay, failure = failure, None
                    raise replay
                result = await self.guard(lambda: self._stream(request, turn))
        return result

    async def _stream(self, request: ModelRequest, turn: int) -> AssistantMessage:
        provider = request.model.provider
        partial = MessageBuilder(model=request.model.id, provider=provider)
        started = False
        try:
            async for event in self.provider.stream(request):
                if isinstance(event, ProviderDone):
                    message = checked_reply(event.message, provider)
                    if not started:
                        self.emit(EventType.MESSAGE_START, turn=turn, message=message)
                    return message
                delta = _clean_delta(event, provider)
                if not started:
                    started = True
                    self.partial = partial
                    self.emit(EventType.MESSAGE_START, turn=turn, message=partial.view())
                self.emit(
                    EventType.MESSAGE_UPDATE,
                    turn=turn,
                    message=partial.add(delta),
                    delta=_describe(delta, partial),
                )
        except ProviderError as exc:
            if started:  # output already streamed: a retry would repeat it
                exc.retryable = False
            raise
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the run is being aborted or timed out
            raise ProviderError(  # raised by the provider itself: a failure, not an abort
                f"the model provider raised {describe_exception(exc)}", provider=provider
            ) from exc
        except (SystemExit, KeyboardInterrupt) as exc:  # raised by provider code: would
            # escape the task and stop the caller's event loop
            raise ProviderError(
                f"the model provider raised {describe_exception(exc)}", provider=provider
            ) from exc
        raise ProviderError(
            "the model stream ended without a final message", provider=request.model.provider
        )

    def aborted_message(self) -> AssistantMessage | None:
        """What the model had streamed when the run was stopped, if anything."""
        if self.partial is None or self.partial.empty:
            return None
        return self.partial.build(stop_reason="aborted")

    # --- tools ------------------------------------------------------------------------

    async def _run_tool(self, call: ToolCall, turn: int) -> ToolResultMessage:
        self.emit(
            EventType.TOOL_EXECUTION_START,
            turn=turn,
            tool_call_id=call.id,
            tool_name=call.name,
            arguments=call.arguments,
        )
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            outcome = ToolOutcome(f"unknown tool {call.name!r} (available: {known})", True)
        else:
            progress, finished = self._progress(call, turn)
            try:
                outcome = await tool.execute(call.arguments, progress, self.clock)
            except Exception as exc:  # Tool.execute returns errors; a subclass may not
                outcome = ToolOutcome(f"tool {call.name!r} failed: {describe_exception(exc)}", True)
            finally:
                finished.set()
        text = replace_surrogates(outcome.text) if isinstance(outcome.text, str) else ""
        result = ToolResultMessage(call.id, call.name, text, is_error=bool(outcome.is_error))
        self.manager.append_message(self.session, result)
        await self.manager.save(self.session)
        self.emit(
            EventType.TOOL_EXECUTION_END,
            turn=turn,
            tool_call_id=call.id,
            tool_name=call.name,
            result=result,
            is_error=result.is_error,
        )
        return result

    def _progress(self, call: ToolCall, turn: int) -> tuple[Callable[[str], None], threading.Event]:
        """A progress callback for one tool call, callable from the loop or from the
        thread of a sync tool; it does nothing once ``finished`` is set (a tool that
        timed out may still be running)."""
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        finished = threading.Event()

        def emit(text: str) -> None:
            if not finished.is_set():
                self.emit(
                    EventType.TOOL_EXECUTION_UPDATE,
                    turn=turn,
                    tool_call_id=call.id,
                    tool_name=call.name,
                    delta={"type": "progress", "text": text},
                )

        def progress(text: str) -> None:
            if finished.is_set():
                return
            shown = replace_surrogates(text if isinstance(text, str) else _safe_str(text))
            if threading.get_ident() == loop_thread:
                emit(shown)
            else:
                # a closed loop raises RuntimeError: the run is long over
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(emit, shown)

        return progress, finished


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception as exc:
        return f"<{type(value).__name__}: str() raised {describe_exception(exc)}>"


def _text(value: Any, what: str, provider: str | None) -> str:
    if not isinstance(value, str):
        raise ProviderError(
            f"provider sent a {what} that is not a string: {type(value).__name__}",
            provider=provider,
        )
    return replace_surrogates(value)


def _clean_delta(event: Any, provider: str | None) -> StreamDelta:
    """The provider's delta with its text made safe to store (surrogates -> U+FFFD)."""
    if isinstance(event, TextDelta):
        text = _text(event.text, "text delta", provider)
        return event if text is event.text else TextDelta(text)
    if isinstance(event, ThinkingDelta):
        thinking = _text(event.thinking, "thinking delta", provider)
        return event if thinking is event.thinking else ThinkingDelta(thinking)
    if isinstance(event, ToolCallDelta):
        if isinstance(event.index, bool) or not isinstance(event.index, int):
            raise ProviderError(
                f"provider sent a tool call delta whose index is {event.index!r}",
                provider=provider,
            )
        return ToolCallDelta(
            event.index,
            id=None if event.id is None else _text(event.id, "tool call id", provider),
            name=None if event.name is None else _text(event.name, "tool call name", provider),
            arguments_delta=_text(event.arguments_delta, "tool call arguments", provider),
        )
    raise ProviderError(f"provider sent an unknown event {type(event).__name__}", provider=provider)


def _describe(delta: StreamDelta, partial: MessageBuilder) -> dict[str, Any]:
    """The ``delta`` field of a ``message_update`` event (a tool call's id and name are
    those it has so far)."""
    if isinstance(delta, TextDelta):
        return {"type": "text", "text": delta.text}
    if isinstance(delta, ThinkingDelta):
        return {"type": "thinking", "thinking": delta.thinking}
    call_id, name = partial.call_identity(delta.index)
    return {
        "type": "tool_call",
        "index": delta.index,
        "id": call_id,
        "name": name,
        "arguments_delta": delta.arguments_delta,
    }
