"""One run's agent loop: call the model, stream its message, run the tools it asks for,
persist each message as it completes, until no tool calls remain or ``max_turns``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import stamina

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
from ..models import (
    AssistantMessage,
    Session,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
)
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


class _PartialMessage:
    """Accumulates deltas into the assistant message being streamed."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    @property
    def empty(self) -> bool:
        return not (self.text or self.thinking or self.calls)

    def snapshot(self, **fields: Any) -> AssistantMessage:
        blocks: list[Any] = []
        if self.thinking:
            blocks.append(ThinkingContent("".join(self.thinking)))
        if self.text:
            blocks.append(TextContent("".join(self.text)))
        for call in self.calls.values():
            try:
                args = json.loads("".join(call["args"]) or "{}")
            except ValueError:
                args = {"_partial_arguments": "".join(call["args"])}
            blocks.append(ToolCall(call["id"] or "", call["name"] or "", args))
        return AssistantMessage(blocks, **fields)


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
        self.partial: _PartialMessage | None = None
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
        partial = _PartialMessage()
        started = False
        fields = {"model": request.model.id, "provider": request.model.provider}
        try:
            async for event in self.provider.stream(request):
                if isinstance(event, ProviderDone):
                    if not started:
                        self.emit(EventType.MESSAGE_START, turn=turn, message=event.message)
                    return event.message
                if not started:
                    started = True
                    self.partial = partial
                    self.emit(
                        EventType.MESSAGE_START, turn=turn, message=partial.snapshot(**fields)
                    )
                delta = self._apply(partial, event)
                self.emit(
                    EventType.MESSAGE_UPDATE,
                    turn=turn,
                    message=partial.snapshot(**fields),
                    delta=delta,
                )
        except ProviderError as exc:
            if started:  # output already streamed: a retry would repeat it
                exc.retryable = False
            raise
        raise ProviderError(
            "the model stream ended without a final message", provider=request.model.provider
        )

    @staticmethod
    def _apply(partial: _PartialMessage, event: Any) -> dict[str, Any]:
        if isinstance(event, TextDelta):
            partial.text.append(event.text)
            return {"type": "text", "text": event.text}
        if isinstance(event, ThinkingDelta):
            partial.thinking.append(event.thinking)
            return {"type": "thinking", "thinking": event.thinking}
        if isinstance(event, ToolCallDelta):
            call = partial.calls.setdefault(event.index, {"id": None, "name": None, "args": []})
            call["id"] = event.id or call["id"]
            call["name"] = event.name or call["name"]
            call["args"].append(event.arguments_delta)
            return {
                "type": "tool_call",
                "index": event.index,
                "id": call["id"],
                "name": call["name"],
                "arguments_delta": event.arguments_delta,
            }
        raise ProviderError(f"provider sent an unknown event {type(event).__name__}")

    def aborted_message(self) -> AssistantMessage | None:
        """What the model had streamed when the run was stopped, if anything."""
        if self.partial is None or self.partial.empty:
            return None
        r = self.base_request.model
        return self.partial.snapshot(model=r.id, provider=r.provider, stop_reason="aborted")

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
            outcome = await tool.execute(call.arguments, self._progress(call, turn), self.clock)
        result = ToolResultMessage(call.id, call.name, outcome.text, is_error=outcome.is_error)
        self.manager.append_message(self.session, result)
        await self.manager.save(self.session)
        self.emit(
            EventType.TOOL_EXECUTION_END,
            turn=turn,
            tool_call_id=call.id,
            tool_name=call.name,
            result=result,
            is_error=outcome.is_error,
        )
        return result

    def _progress(self, call: ToolCall, turn: int) -> Callable[[str], None]:
        def progress(text: str) -> None:
            self.emit(
                EventType.TOOL_EXECUTION_UPDATE,
                turn=turn,
                tool_call_id=call.id,
                tool_name=call.name,
                delta={"type": "progress", "text": str(text)},
            )

        return progress
