"""SessionEngine: load -> rate limit -> concurrency cap -> agent loop -> persist -> stream."""

from __future__ import annotations

import asyncio
import contextvars
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

import attrs
import structlog

from ..agent.builtin import EchoProvider
from ..agent.provider import ModelProvider, ModelRequest
from ..agent.tools import Tool
from ..breaker import CircuitBreaker
from ..clock import Clock, SystemClock, utc_from_timestamp
from ..errors import (
    CapacityError,
    EngineDrainingError,
    EngineNotStartedError,
    InvalidArgumentError,
    PluginError,
    RateLimitedError,
    SessionBusyError,
    SessionNotFound,
    SpectraError,
)
from ..ids import validate_id
from ..manager import SessionManager
from ..models import AssistantMessage, ModelRef, Session, SessionConfig, UserMessage
from ..plugins import BackendKind, PluginRegistry
from ._limits import AnyRateLimiter, admit_rate_limit
from ._turn import AgentLoop, RetryPolicy
from .events import EventType, RunEvent, RunStatus
from .options import RunOptions, RunResult

__all__ = ["BusyPolicy", "HealthReport", "Lifecycle", "SessionEngine"]

log = structlog.get_logger("spectra.engine")

BusyPolicy = Literal["reject", "wait"]
DEFAULT_MODEL = ModelRef("echo", provider="echo")


class Lifecycle(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


@attrs.frozen
class HealthReport:
    """``healthy`` when running and every check passes, ``degraded`` when a check fails
    or the engine is draining, ``unhealthy`` when it is not running."""

    status: Literal["healthy", "degraded", "unhealthy"]
    lifecycle: Lifecycle
    active_sessions: int
    max_concurrent_sessions: int
    checks: dict[str, str]


class _Run:
    """A run in flight: its task, its event queue and how it ended."""

    def __init__(
        self,
        engine: SessionEngine,
        run_id: str,
        session: Session,
        user_id: str,
        text: str,
        options: RunOptions,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.session = session
        self.user_id = user_id
        self.text = text
        self.options = options
        self.queue: asyncio.Queue[RunEvent] = asyncio.Queue()
        self.seq = 0
        self.done = asyncio.Event()
        self.cancel_reason: RunStatus | None = None
        self.result: RunResult | None = None
        self.retry_after: float | None = None
        self.task: asyncio.Task[None] | None = None  # the agent loop; cancelled to abort
        self.outer: asyncio.Task[None] | None = None  # supervises task, always finishes
        self.loop: AgentLoop | None = None

    def emit(self, type: EventType, **fields: Any) -> None:
        self.seq += 1
        self.queue.put_nowait(
            RunEvent(
                type=type,
                session_id=self.session.id,
                run_id=self.run_id,
                seq=self.seq,
                timestamp=self.engine.clock.time(),
                **fields,
            )
        )

    def cancel(self, reason: RunStatus) -> bool:
        if self.task is None or self.task.done() or self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        self.task.cancel()
        return True

    async def events(self) -> AsyncIterator[RunEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if event.terminal:
                return


class SessionEngine:
    """Runs agents on sessions, one call per turn, with limits, caps, timeouts and drain.

    ``providers`` maps provider names to model providers; a model without a provider,
    or no model at all, uses ``provider`` (default: the offline ``echo`` provider).
    Providers named by a model but not given are built from ``registry`` with their
    default options. ``busy`` says what a run on a session that is already running
    does: ``"reject"`` (SessionBusyError) or ``"wait"`` for the running turn.
    """

    def __init__(
        self,
        session_manager: SessionManager,
        rate_limiter: AnyRateLimiter | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        *,
        max_concurrent_sessions: int = 100,
        session_timeout_ms: int = 120_000,
        engine_id: str | None = None,
        provider: ModelProvider | None = None,
        providers: Mapping[str, ModelProvider] | None = None,
        registry: PluginRegistry | None = None,
        default_model: ModelRef | None = None,
        busy: BusyPolicy = "reject",
        capacity_wait_ms: int = 0,
        max_input_chars: int = 1_000_000,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        close_providers: bool = False,
    ) -> None:
        if max_concurrent_sessions < 1:
            raise InvalidArgumentError(
                f"max_concurrent_sessions must be at least 1, got {max_concurrent_sessions}"
            )
        if session_timeout_ms <= 0:
            raise InvalidArgumentError(
                f"session_timeout_ms must be positive, got {session_timeout_ms}"
            )
        if busy not in ("reject", "wait"):
            raise InvalidArgumentError(f"busy must be 'reject' or 'wait', got {busy!r}")
        self.session_manager = session_manager
        self.rate_limiter = rate_limiter
        self.circuit_breaker = circuit_breaker
        self.max_concurrent_sessions = max_concurrent_sessions
        self.session_timeout_ms = session_timeout_ms
        self.engine_id = engine_id or f"engine-{uuid.uuid4().hex[:8]}"
        self.default_provider: ModelProvider = provider or EchoProvider()
        self.providers: dict[str, ModelProvider] = dict(providers or {})
        self.registry = registry
        self.default_model = default_model or DEFAULT_MODEL
        self.busy = busy
        self.capacity_wait_ms = capacity_wait_ms
        self.max_input_chars = max_input_chars
        self.retry = retry or RetryPolicy()
        self.clock: Clock = clock or SystemClock()
        self.lifecycle = Lifecycle.IDLE
        # providers closed by stop(): those built here, and all of them if asked
        self._owned: list[ModelProvider] = (
            [self.default_provider, *self.providers.values()] if close_providers else []
        )
        if provider is None:
            self._owned.append(self.default_provider)
        self._runs: dict[str, _Run] = {}
        self._by_session: dict[str, _Run] = {}
        # sessions claimed by a run being admitted (set when admission ends either way)
        self._admitting: dict[str, asyncio.Event] = {}
        self._reserved = 0
        self._slot_freed = asyncio.Condition()

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Accept runs."""
        if self.lifecycle in (Lifecycle.DRAINING, Lifecycle.STOPPED):
            raise EngineDrainingError(f"engine {self.engine_id} was stopped; make a new one")
        self.lifecycle = Lifecycle.RUNNING

    @property
    def active_session_count(self) -> int:
        return len(self._runs)

    async def stop(self, drain: bool = True, drain_timeout: float | None = None) -> None:
        """Stop accepting runs. ``drain=True`` lets in-flight runs finish (aborting those
        still running after ``drain_timeout`` seconds, if given); ``drain=False`` aborts them.
        Either way every run ends with its terminal event and its output saved."""
        if self.lifecycle is Lifecycle.STOPPED:
            return
        self.lifecycle = Lifecycle.DRAINING
        log.info("engine draining", engine_id=self.engine_id, drain=drain, active=len(self._runs))
        runs = list(self._runs.values())
        if not drain:
            for run in runs:
                run.cancel(RunStatus.ABORTED)
        waits = [run.done.wait() for run in runs]
        if waits:
            if drain_timeout is None:
                await asyncio.gather(*waits)
            else:
                try:
                    await asyncio.wait_for(asyncio.gather(*waits), drain_timeout)
                except TimeoutError:
                    for run in runs:
                        run.cancel(RunStatus.ABORTED)
                    await asyncio.gather(*(run.done.wait() for run in runs))
        self.lifecycle = Lifecycle.STOPPED
        for owned in {id(p): p for p in self._owned}.values():
            await owned.aclose()
        log.info("engine stopped", engine_id=self.engine_id)

    def abort_session(self, session_id: str) -> bool:
        """Abort the run in progress on ``session_id``; False if there is none."""
        run = self._by_session.get(session_id)
        return run.cancel(RunStatus.ABORTED) if run is not None else False

    async def health(self) -> HealthReport:
        """Lifecycle, load, and a ping of the store."""
        checks: dict[str, str] = {}
        try:
            await self.session_manager.store.ping()
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"error: {type(exc).__name__}: {exc}"
        if self.lifecycle is not Lifecycle.RUNNING:
            status: Literal["healthy", "degraded", "unhealthy"] = (
                "degraded" if self.lifecycle is Lifecycle.DRAINING else "unhealthy"
            )
        else:
            status = "healthy" if all(v == "ok" for v in checks.values()) else "degraded"
        return HealthReport(
            status, self.lifecycle, len(self._runs), self.max_concurrent_sessions, checks
        )

    # --- running ----------------------------------------------------------------------

    async def run(
        self,
        user_id: str,
        input: str | UserMessage,
        session_id: str | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run one turn to the end. Raises RateLimitedError when rate limited, and the
        admission errors of :meth:`run_streaming`; other outcomes are in the result."""
        run = await self._admit(user_id, input, session_id, options)
        async for _ in run.events():
            pass
        assert run.result is not None
        if run.result.status is RunStatus.RATE_LIMITED:
            raise RateLimitedError(run.result.error or "rate limited", run.retry_after or 0.0)
        return run.result

    async def run_streaming(
        self,
        user_id: str,
        input: str | UserMessage,
        session_id: str | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Start a turn and return its events as they happen, ending with ``run_end``.

        Raises before returning when the run cannot start: EngineNotStartedError,
        EngineDrainingError, InvalidArgumentError (bad input or id), SessionNotFound
        (unknown session, or one of another user), SessionBusyError, CapacityError. A
        rate-limited run yields a single ``run_end`` with status ``rate_limited``.
        """
        run = await self._admit(user_id, input, session_id, options)
        return run.events()

    async def _admit(
        self,
        user_id: str,
        input: str | UserMessage,
        session_id: str | None,
        options: RunOptions | Mapping[str, Any] | None,
    ) -> _Run:
        self._check_accepting()
        opts = RunOptions.coerce(options)
        text = self._check_input(input)
        if not isinstance(user_id, str) or not user_id:
            raise InvalidArgumentError("user_id must be a non-empty string")
        if session_id is not None:
            validate_id(session_id)
            await self._claim(session_id)
        try:
            return await self._admit_claimed(user_id, text, session_id, opts)
        finally:
            self._unclaim(session_id)

    async def _admit_claimed(
        self, user_id: str, text: str, session_id: str | None, opts: RunOptions
    ) -> _Run:
        session = await self._load_owned(user_id, session_id) if session_id else None
        provider_name = (opts.model or self.default_model).provider
        reservation = await admit_rate_limit(
            self.rate_limiter,
            user_id=user_id,
            tenant_id=opts.tenant_id or (session.tenant_id if session else None),
            provider=provider_name,
            session_id=session_id,
        )
        if reservation.rejected:
            return await self._rate_limited(user_id, text, session, opts, reservation)
        try:
            await self._take_slot()
        except BaseException:
            await reservation.release()
            raise
        try:
            self._check_accepting()
            if session is None:
                session = await self.session_manager.create(
                    SessionConfig(
                        model=opts.model,
                        system_prompt=opts.system_prompt,
                        metadata=dict(opts.metadata),
                    ),
                    user_id=user_id,
                    tenant_id=opts.tenant_id,
                )
            await reservation.commit()
        except BaseException:
            self._reserved -= 1
            await reservation.release()
            raise
        run = _Run(self, uuid.uuid4().hex, session, user_id, text, opts)
        self._reserved -= 1
        self._runs[run.run_id] = run
        self._by_session[session.id] = run
        ctx = contextvars.copy_context()
        ctx.run(
            structlog.contextvars.bind_contextvars,
            engine_id=self.engine_id,
            session_id=session.id,
            run_id=run.run_id,
            user_id=user_id,
            tenant_id=session.tenant_id,
        )
        loop = asyncio.get_running_loop()
        run.task = loop.create_task(self._work(run), context=ctx.copy())
        run.outer = loop.create_task(self._execute(run), context=ctx)
        return run

    def _check_accepting(self) -> None:
        if self.lifecycle is Lifecycle.IDLE:
            raise EngineNotStartedError(f"engine {self.engine_id} is not started; call start()")
        if self.lifecycle is not Lifecycle.RUNNING:
            raise EngineDrainingError(
                f"engine {self.engine_id} is {self.lifecycle.value} and accepts no new runs"
            )

    def _check_input(self, input: str | UserMessage) -> str:
        text = input.text if isinstance(input, UserMessage) else input
        if not isinstance(text, str):
            raise InvalidArgumentError(f"input must be a string, got {type(input).__name__}")
        if not text.strip():
            raise InvalidArgumentError("input is empty")
        if len(text) > self.max_input_chars:
            raise InvalidArgumentError(
                f"input is {len(text):,} characters; the limit is {self.max_input_chars:,} "
                "(max_input_chars)"
            )
        return text

    async def _claim(self, session_id: str) -> asyncio.Event:
        """Wait until no run holds or is admitting ``session_id`` (or refuse, with
        ``busy="reject"``), then claim it; the check and the claim are one step."""
        while True:
            running = self._by_session.get(session_id)
            admitting = self._admitting.get(session_id)
            if running is None and admitting is None:
                claim = self._admitting[session_id] = asyncio.Event()
                return claim
            if self.busy == "reject":
                raise SessionBusyError(
                    f"session {session_id!r} already has a run in progress; retry when it "
                    "ends or use busy='wait'"
                )
            if running is not None:
                await running.done.wait()
            elif admitting is not None:
                await admitting.wait()

    def _unclaim(self, session_id: str | None) -> None:
        if session_id is not None:
            claim = self._admitting.pop(session_id, None)
            if claim is not None:
                claim.set()

    async def _load_owned(self, user_id: str, session_id: str) -> Session:
        session = await self.session_manager.load(session_id)
        if session.user_id is not None and session.user_id != user_id:
            raise SessionNotFound(session_id)  # never reveal another user's session
        return session

    async def _take_slot(self) -> None:
        def full() -> bool:
            return len(self._runs) + self._reserved >= self.max_concurrent_sessions

        if full():
            if self.capacity_wait_ms <= 0:
                raise CapacityError(
                    f"engine {self.engine_id} is at capacity "
                    f"({self.max_concurrent_sessions} concurrent sessions); retry later"
                )
            async with self._slot_freed:
                try:
                    await asyncio.wait_for(
                        self._slot_freed.wait_for(lambda: not full()),
                        self.capacity_wait_ms / 1000,
                    )
                except TimeoutError:
                    raise CapacityError(
                        f"engine {self.engine_id} stayed at capacity "
                        f"({self.max_concurrent_sessions}) for {self.capacity_wait_ms} ms"
                    ) from None
        self._reserved += 1

    async def _rate_limited(
        self,
        user_id: str,
        text: str,
        session: Session | None,
        opts: RunOptions,
        reservation: Any,
    ) -> _Run:
        retry_after = reservation.retry_after
        wait = (
            "no retry can pass"
            if retry_after == float("inf")
            else (f"retry after {retry_after:.3g}s")
        )
        message = f"rate limited for user {user_id!r}; {wait}"
        now = utc_from_timestamp(self.clock.time())
        placeholder = session or Session(id="-", created_at=now, updated_at=now, user_id=user_id)
        run = _Run(self, uuid.uuid4().hex, placeholder, user_id, text, opts)
        run.retry_after = retry_after
        if session is not None:
            self.session_manager.append_audit(
                session,
                "rate_limited",
                {
                    "run_id": run.run_id,
                    "user_id": user_id,
                    "engine_id": self.engine_id,
                    "retry_after": None if math.isinf(retry_after) else retry_after,
                },
            )
            await self.session_manager.save(session)
        log.info(
            "run rate limited",
            engine_id=self.engine_id,
            user_id=user_id,
            session_id=placeholder.id,
            retry_after=retry_after,
        )
        run.result = RunResult(
            session_id=placeholder.id,
            run_id=run.run_id,
            status=RunStatus.RATE_LIMITED,
            final_message=None,
            error=message,
        )
        run.emit(
            EventType.RUN_END, status=RunStatus.RATE_LIMITED, error=message, retry_after=retry_after
        )
        run.done.set()
        return run

    # --- the run task -----------------------------------------------------------------

    def _provider_for(self, model: ModelRef) -> ModelProvider:
        name = model.provider
        if name is None:
            return self.default_provider
        if name in self.providers:
            return self.providers[name]
        if self.registry is not None:
            provider: ModelProvider = self.registry.create(BackendKind.MODEL_PROVIDER, name)
            self.providers[name] = provider
            self._owned.append(provider)
            return provider
        if name == DEFAULT_MODEL.provider:
            return self.default_provider
        raise PluginError(
            f"no model provider {name!r}: pass providers={{{name!r}: ...}} or a registry"
        )

    async def _work(self, run: _Run) -> None:
        """The cancellable part of a run: record its start, then the agent loop."""
        session, manager = run.session, self.session_manager
        model = self._effective_model(session, run.options)
        provider = self._provider_for(model)
        manager.append_audit(
            session,
            "run_started",
            {
                "run_id": run.run_id,
                "engine_id": self.engine_id,
                "user_id": run.user_id,
                "tenant_id": session.tenant_id,
                "model": model.id,
                "provider": model.provider,
            },
        )
        manager.append_message(session, UserMessage(run.text))
        await manager.save(session)
        log.info("run started", model=model.id)
        run.loop = AgentLoop(
            manager=manager,
            session=session,
            provider=provider,
            request=ModelRequest(
                model=model,
                system_prompt=run.options.system_prompt,
                tools=tuple(t.spec for t in run.options.tools),
                temperature=run.options.temperature,
                max_tokens=run.options.max_tokens,
            ),
            tools=_tool_table(run.options.tools),
            max_turns=run.options.max_turns,
            emit=run.emit,
            guard=self._guard,
            retry=self.retry,
            clock=self.clock,
        )
        await run.loop.run()

    async def _execute(self, run: _Run) -> None:
        """Supervise one run: wait for its loop (which a timeout or abort may cancel),
        then save what it produced, record how it ended and emit the terminal event."""
        assert run.task is not None
        timeout = (run.options.timeout_ms or self.session_timeout_ms) / 1000
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(run, timeout))
        try:
            await asyncio.wait({run.task})
            watchdog.cancel()
            status, error = RunStatus.COMPLETED, None
            if run.task.cancelled():
                status = run.cancel_reason or RunStatus.ABORTED
                error = (
                    f"timed out after {timeout:g}s"
                    if status is RunStatus.TIMED_OUT
                    else ("aborted")
                )
                self._keep_partial(run)
            elif (exc := run.task.exception()) is not None:
                status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
                log.warning("run failed", error=error)
            await self._finish(run, status, error)
        finally:
            watchdog.cancel()
            self._runs.pop(run.run_id, None)
            if self._by_session.get(run.session.id) is run:
                del self._by_session[run.session.id]
            run.done.set()
            async with self._slot_freed:
                self._slot_freed.notify_all()

    async def _watchdog(self, run: _Run, seconds: float) -> None:
        await self.clock.sleep(seconds)
        run.cancel(RunStatus.TIMED_OUT)

    def _effective_model(self, session: Session, options: RunOptions) -> ModelRef:
        current = self.session_manager.build_context(session).model
        if options.model is not None and options.model != current and session.entries:
            self.session_manager.append_model_change(session, options.model)
        return options.model or current or self.default_model

    async def _guard(self, call: Callable[[], Awaitable[AssistantMessage]]) -> AssistantMessage:
        if self.circuit_breaker is None:
            return await call()
        result: AssistantMessage = await self.circuit_breaker.call(call)
        return result

    def _keep_partial(self, run: _Run) -> None:
        """Append what the model had streamed before the abort; _finish saves it."""
        partial = run.loop.aborted_message() if run.loop else None
        if partial is not None:
            self.session_manager.append_message(run.session, partial)
            run.emit(EventType.MESSAGE_END, message=partial)

    async def _finish(self, run: _Run, status: RunStatus, error: str | None) -> None:
        loop = run.loop
        final = loop.final if loop else None
        try:
            self.session_manager.append_audit(
                run.session,
                "run_finished",
                {
                    "run_id": run.run_id,
                    "engine_id": self.engine_id,
                    "status": status.value,
                    "turns": loop.turns if loop else 0,
                    "error": error,
                },
            )
            await self.session_manager.save(run.session)
        except SpectraError as exc:
            if status is RunStatus.COMPLETED:
                status = RunStatus.FAILED
            error = error or f"could not save the session: {exc}"
            log.warning("run end not saved", error=str(exc))
        run.result = RunResult(
            session_id=run.session.id,
            run_id=run.run_id,
            status=status,
            final_message=final,
            error=error,
            turns=loop.turns if loop else 0,
        )
        log.info("run finished", status=status.value, error=error)
        run.emit(EventType.RUN_END, status=status, error=error, message=final)


def _tool_table(tools: Sequence[Tool]) -> dict[str, Tool]:
    table: dict[str, Tool] = {}
    for t in tools:
        if t.name in table:
            raise InvalidArgumentError(f"two tools are named {t.name!r}")
        table[t.name] = t
    return table
