"""One admitted run: its event queue, its task, the watchdog that times it out, and the
finish that always ends it with exactly one terminal event.

The promise kept here: whatever raises (a provider, a tool, the store, a cancellation
that is not an abort, even a ``BaseException``), an admitted run saves what it can,
emits one ``run_end`` and calls ``on_end`` (which frees its slot and claim).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import structlog

from ..agent.provider import ModelProvider, ModelRequest
from ..clock import Clock
from ..errors import ConflictError
from ..manager import SessionManager
from ..models import AssistantMessage, ModelRef, Session, UserMessage
from ..text import scrub_text
from ._log import LogWriter
from ._queue import EventQueue, PacedProvider
from ._turn import AgentLoop, RetryPolicy
from .events import EventType, RunEvent, RunStatus
from .options import RunOptions, RunResult

__all__ = ["Run", "RunCrashed", "RunHandle", "Runner", "describe", "finished"]

log = structlog.get_logger("spectra.engine")


def describe(exc: BaseException) -> str:
    """``"Type: message"`` for an exception, even one whose ``__str__`` raises, with
    text that cannot be stored (lone surrogates) replaced."""
    try:
        text = str(exc)
    except Exception:
        text = "<the exception's message could not be read>"
    name = type(exc).__name__
    return scrub_text(f"{name}: {text}" if text else name)


@attrs.define(eq=False)
class Run:
    """A run in flight: who asked for what, its event queue and how it ended."""

    run_id: str
    session: Session
    user_id: str
    message: UserMessage
    options: RunOptions
    clock: Clock
    queue: EventQueue
    seq: int = 0
    done: asyncio.Event = attrs.field(factory=asyncio.Event)
    cancel_reason: RunStatus | None = None
    result: RunResult | None = None
    retry_after: float | None = None
    task: asyncio.Task[None] | None = None  # the agent loop; cancelled to abort
    outer: asyncio.Task[None] | None = None  # supervises task, always finishes
    loop: AgentLoop | None = None
    writer: asyncio.Task[None] | None = None  # appends the events to the event log
    log_ready: asyncio.Event = attrs.field(factory=asyncio.Event)  # the log has the run
    logged: bool = False  # its events go to the event log (else to a local reader)

    def emit(self, type: EventType, **fields: Any) -> None:
        self.seq += 1
        self.queue.put(
            RunEvent(
                type=type,
                session_id=self.session.id,
                run_id=self.run_id,
                seq=self.seq,
                timestamp=self.clock.time(),
                **fields,
            )
        )

    def cancel(self, reason: RunStatus) -> bool:
        if self.task is None or self.task.done() or self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        self.task.cancel()
        return True

    @staticmethod
    def abort(run: Run | None, user_id: str | None = None) -> bool:
        """Abort ``run`` if there is one (and it is ``user_id``'s, when given)."""
        ok = run is not None and (user_id is None or run.user_id == user_id)
        return run.cancel(RunStatus.ABORTED) if ok and run is not None else False

    async def events(self) -> AsyncIterator[RunEvent]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                if event.terminal:
                    return
        finally:
            self.queue.close()


@attrs.frozen
class RunHandle:
    """A run started by :meth:`SessionEngine.start_run`: its ids, and its result."""

    run_id: str
    session_id: str
    _run: Run = attrs.field(repr=False, alias="run")

    async def result(self) -> RunResult:
        """Wait for the run to end (and its events to be logged); its result."""
        return await finished(self._run)


async def finished(run: Run) -> RunResult:
    """The run's result once it ended and its events are logged."""
    await run.done.wait()
    if run.writer is not None:  # the result is returned once the log has the run_end
        await asyncio.wait({run.writer})
    assert run.result is not None
    return run.result


class RunCrashed(Exception):
    """Something in a run raised a ``BaseException`` that is not a cancellation (e.g.
    ``SystemExit`` from a provider); re-raised as this so it fails the run only."""


@attrs.define(eq=False)
class Runner:
    """Starts admitted runs and sees each one to its end."""

    manager: SessionManager
    engine_id: str
    clock: Clock
    retry: RetryPolicy
    default_model: ModelRef
    session_timeout_ms: float
    provider_for: Callable[[ModelRef], ModelProvider]
    guard: Callable[[Callable[[], Awaitable[AssistantMessage]]], Awaitable[AssistantMessage]]
    on_end: Callable[[Run], None]
    log_writer: LogWriter | None = None

    def start(self, run: Run) -> None:
        """Start the run's task and its supervisor, in a context that logs its ids."""
        ctx = contextvars.copy_context()
        ctx.run(
            structlog.contextvars.bind_contextvars,
            engine_id=self.engine_id,
            session_id=run.session.id,
            run_id=run.run_id,
            user_id=run.user_id,
            tenant_id=run.session.tenant_id,
        )
        loop = asyncio.get_running_loop()
        if self.log_writer is not None:
            run.writer = loop.create_task(self._log(run, self.log_writer), context=ctx.copy())
        else:
            run.log_ready.set()
        run.task = loop.create_task(self._work(run), context=ctx.copy())
        run.outer = loop.create_task(self._execute(run), context=ctx)

    async def _log(self, run: Run, writer: LogWriter) -> None:
        """Open the run in the event log, then append its events as they come."""
        try:
            run.logged = await writer.open(run)
        finally:
            run.log_ready.set()
        if run.logged:
            await writer.write(run)

    async def _work(self, run: Run) -> None:
        """The cancellable part of a run: record its start, then the agent loop."""
        try:
            await self._agent(run)
        except (Exception, asyncio.CancelledError):
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... from our callees
            raise RunCrashed(describe(exc)) from exc

    async def _agent(self, run: Run) -> None:
        session, manager = run.session, self.manager
        model = self._effective_model(session, run.options)
        provider = self.provider_for(model)
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
        manager.append_message(session, run.message)
        await manager.save(session)
        log.info("run started", model=model.id)
        run.loop = AgentLoop(
            manager=manager,
            session=session,
            provider=PacedProvider(provider, run.queue),
            request=ModelRequest(
                model=model,
                system_prompt=run.options.system_prompt,
                tools=tuple(t.spec for t in run.options.tools),
                temperature=run.options.temperature,
                max_tokens=run.options.max_tokens,
            ),
            tools={t.name: t for t in run.options.tools},
            max_turns=run.options.max_turns,
            emit=run.emit,
            guard=self.guard,
            retry=self.retry,
            clock=self.clock,
        )
        await run.loop.run()

    def _effective_model(self, session: Session, options: RunOptions) -> ModelRef:
        current = self.manager.build_context(session).model
        if options.model is not None and options.model != current and session.entries:
            self.manager.append_model_change(session, options.model)
        return options.model or current or self.default_model

    async def _execute(self, run: Run) -> None:
        """Supervise one run: wait for its task (which a timeout or abort may cancel),
        then save what it produced, record how it ended and emit the terminal event."""
        assert run.task is not None
        timeout = (run.options.timeout_ms or self.session_timeout_ms) / 1000
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(run, timeout))
        interrupted: asyncio.CancelledError | None = None
        try:
            try:
                await asyncio.wait({run.task})
            except asyncio.CancelledError as exc:  # the supervisor itself was cancelled
                interrupted = exc
                run.cancel(RunStatus.ABORTED)
                await asyncio.wait({run.task})
            watchdog.cancel()
            status, error = self._outcome(run, timeout)
            await self._finish(run, status, error)
        except asyncio.CancelledError as exc:
            interrupted = exc
        except BaseException as exc:  # the run must end, whatever broke
            log.error("run supervision failed", error=describe(exc))
        finally:
            watchdog.cancel()
            if run.result is None:
                self._end(run, RunStatus.FAILED, "the run ended without finishing")
            try:
                self.on_end(run)
            finally:
                run.done.set()
        if interrupted is not None:
            raise interrupted

    async def _watchdog(self, run: Run, seconds: float) -> None:
        await self.clock.sleep(seconds)
        run.cancel(RunStatus.TIMED_OUT)

    def _outcome(self, run: Run, timeout: float) -> tuple[RunStatus, str | None]:
        assert run.task is not None
        if run.task.cancelled():
            if run.cancel_reason is None:
                log.warning("run cancelled from inside")
                return RunStatus.FAILED, "CancelledError: the run was cancelled, not aborted"
            self._keep_partial(run)
            if run.cancel_reason is RunStatus.TIMED_OUT:
                return RunStatus.TIMED_OUT, f"timed out after {timeout:g}s"
            return run.cancel_reason, "aborted"
        exc = run.task.exception()
        if exc is None:
            return RunStatus.COMPLETED, None
        error = str(exc) if isinstance(exc, RunCrashed) else describe(exc)
        log.warning("run failed", error=error)
        return RunStatus.FAILED, error

    def _keep_partial(self, run: Run) -> None:
        """Append what the model had streamed before the abort; _finish saves it."""
        try:
            partial = run.loop.aborted_message() if run.loop else None
            if partial is not None:
                self.manager.append_message(run.session, partial)
                run.emit(EventType.MESSAGE_END, message=partial)
        except Exception as exc:
            log.warning("partial output not kept", error=describe(exc))

    async def _finish(self, run: Run, status: RunStatus, error: str | None) -> None:
        loop = run.loop
        try:
            self.manager.append_audit(
                run.session,
                "run_finished",
                {
                    "run_id": run.run_id,
                    "engine_id": self.engine_id,
                    "status": status.value,
                    "turns": loop.turns if loop else 0,
                    "error": None if error is None else scrub_text(error),
                },
            )
            await self._save_final(run.session)
        except asyncio.CancelledError:
            self._end(run, status, error)
            raise
        except BaseException as exc:  # whatever the store raised, the run still ends
            note = f"could not save the session: {describe(exc)}"
            log.warning("run end not saved", error=note)
            if status is RunStatus.COMPLETED:
                status, error = RunStatus.FAILED, note
            else:
                error = f"{error}; {note}" if error else note
        self._end(run, status, error)

    async def _save_final(self, session: Session) -> None:
        """Save, taking in a save that landed although its caller was cancelled (an
        abort during a save): the store then holds our entries at a newer version."""
        try:
            await self.manager.save(session)
            return
        except ConflictError:
            stored = await self.manager.load(session.id)
            if not _landed(session, stored):
                raise
        merged = attrs.evolve(
            session,
            version=stored.version,
            entries=session.entries,
            saved_count=len(stored.entries),
        )
        await self.manager.save(merged)
        session.mark_saved(merged.version)

    def _end(self, run: Run, status: RunStatus, error: str | None) -> None:
        """Record the result and emit the one terminal event (once)."""
        if run.result is not None:
            return
        loop = run.loop
        final = loop.final if loop else None
        error = None if error is None else scrub_text(error)
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


def _landed(session: Session, stored: Session) -> bool:
    """Whether ``stored`` is ``session`` with some of its unsaved entries already written
    (by a save whose caller was cancelled), and nothing from another writer."""
    saved = len(session.entries) - len(session.unsaved_entries)
    count = len(stored.entries)
    if stored.version <= session.version or not saved <= count <= len(session.entries):
        return False
    ours = {e.id for e in session.entries[:count]}
    return all(e.id in ours for e in stored.entries)
