"""SessionEngine: load -> rate limit -> concurrency cap -> agent loop -> persist -> stream.

The facade: lifecycle (start, stop, drain, health) and the public run methods.
Admission lives in :mod:`._admission`, a run's supervision in :mod:`._run`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import structlog

from .._closing import aclose_all
from ..agent.provider import ModelProvider
from ..breaker import CircuitBreaker
from ..clock import Clock, SystemClock
from ..errors import (
    ConfigError,
    EngineDrainingError,
    EngineNotStartedError,
    RunNotFoundError,
)
from ..event_log import EventLog, LogEntry
from ..health import HealthProbe, ProbeReport
from ..manager import SessionManager
from ..models import AssistantMessage, ModelRef, UserMessage
from ._admission import Admissions, BusyPolicy
from ._limits import AnyRateLimiter
from ._log import LogWriter, replay
from ._providers import (
    DEFAULT_MODEL,
    ProviderResolver,
    Providers,
    check_settings,
    deprecated_registry,
)
from ._run import Run, RunHandle, Runner, finished
from ._turn import RetryPolicy
from .events import RunEvent, RunStatus
from .options import RunOptions, RunResult

__all__ = [
    "BusyPolicy",
    "HealthReport",
    "Lifecycle",
    "ProviderResolver",
    "RunHandle",
    "SessionEngine",
]

log = structlog.get_logger("spectra.engine")


class Lifecycle(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


#: What :meth:`SessionEngine.health` returns (the name of earlier releases).
HealthReport = ProbeReport


class SessionEngine:
    """Runs agents on sessions, one call per turn, with limits, caps, timeouts and drain.

    ``providers`` maps provider names to model providers; a model without a provider,
    or no model at all, uses ``provider`` (default: the offline ``echo`` provider).
    Providers named by a model but not given are built by ``resolve_provider`` (config
    assembly passes one backed by the plugin registry). ``busy`` says what a run on a
    session that is already running does: ``"reject"`` (SessionBusyError) or ``"wait"``
    for the running turn. At most ``max_queued_events`` unread events wait per run: a
    slower reader pauses the run (see docs/engine.md).

    With an ``event_log``, every event of a run is appended to it before anyone sees
    it: :meth:`run_streaming` and :meth:`subscribe` read it from there, so any number of
    readers, on any replica sharing the log, can follow or resume a run. ``health_probe``
    answers :meth:`health` (default: pings of the store and the event log). With
    ``close_backends``, :meth:`stop` also closes the store, limiters, breaker and event
    log (what config assembly built for this engine).
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
        resolve_provider: ProviderResolver | None = None,
        default_model: ModelRef | None = None,
        busy: BusyPolicy = "reject",
        capacity_wait_ms: int = 0,
        max_input_chars: int = 1_000_000,
        max_queued_events: int = 1024,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        close_providers: bool = False,
        event_log: EventLog | None = None,
        health_probe: HealthProbe | None = None,
        close_backends: bool = False,
        registry: Any = None,
    ) -> None:
        if registry is not None:  # the engine no longer knows the plugin registry
            resolve_provider = deprecated_registry(registry, resolve_provider)
        check_settings(
            max_concurrent_sessions=max_concurrent_sessions,
            max_input_chars=max_input_chars,
            max_queued_events=max_queued_events,
            session_timeout_ms=session_timeout_ms,
            busy=busy,
        )
        self.session_manager = session_manager
        self.rate_limiter = rate_limiter
        self.circuit_breaker = circuit_breaker
        self.max_concurrent_sessions = max_concurrent_sessions
        self.session_timeout_ms = session_timeout_ms
        self.engine_id = engine_id or f"engine-{uuid.uuid4().hex[:8]}"
        self._providers = Providers(
            provider, dict(providers or {}), resolve_provider, close_all=close_providers
        )
        self.default_model = default_model or DEFAULT_MODEL
        self.busy: BusyPolicy = busy
        self.capacity_wait_ms = capacity_wait_ms
        self.max_input_chars = max_input_chars
        self.max_queued_events = max_queued_events
        self.retry = retry or RetryPolicy()
        self.clock: Clock = clock or SystemClock()
        self.lifecycle = Lifecycle.IDLE
        self.event_log = event_log
        self.health_probe = health_probe or HealthProbe.of_pings(
            {"store": session_manager.store, "event_log": event_log}, clock=self.clock
        )
        self._backends: list[Any] = (
            [session_manager.store, rate_limiter, circuit_breaker, event_log]
            if close_backends
            else []
        )
        self._stopped = asyncio.Event()
        runner = Runner(
            manager=session_manager,
            engine_id=self.engine_id,
            clock=self.clock,
            retry=self.retry,
            default_model=self.default_model,
            session_timeout_ms=session_timeout_ms,
            provider_for=self._providers.for_model,
            guard=self._guard,
            on_end=lambda run: self._admissions.ended(run),
            log_writer=LogWriter(event_log) if event_log is not None else None,
        )
        self._admissions = Admissions(
            policy=self,
            manager=session_manager,
            accepting=self._check_accepting,
            start=runner.start,
        )

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Accept runs."""
        if self.lifecycle in (Lifecycle.DRAINING, Lifecycle.STOPPED):
            raise EngineDrainingError(f"engine {self.engine_id} was stopped; make a new one")
        self.lifecycle = Lifecycle.RUNNING

    @property
    def active_session_count(self) -> int:
        return len(self._admissions.runs)

    @property
    def _runs(self) -> dict[str, Run]:
        return self._admissions.runs

    @property
    def _by_session(self) -> dict[str, Run]:
        return self._admissions.by_session

    async def stop(self, drain: bool = True, drain_timeout: float | None = None) -> None:
        """Stop accepting runs. ``drain=True`` lets in-flight runs finish (aborting those
        still running after ``drain_timeout`` seconds, if given); ``drain=False`` aborts them.
        Either way every run ends with its terminal event and its output saved, and no
        run being admitted meanwhile starts after this returns."""
        if self.lifecycle is Lifecycle.STOPPED:
            return
        if self.lifecycle is Lifecycle.DRAINING:  # another stop() is under way
            await self._stopped.wait()
            return
        self.lifecycle = Lifecycle.DRAINING
        log.info("engine draining", engine_id=self.engine_id, drain=drain, active=len(self._runs))
        self._admissions.wake()  # admissions waiting for a slot re-check and are refused
        if not drain:
            self._abort_all()
        try:
            if drain_timeout is None:
                await self._quiesce(abort=not drain)
            else:
                try:
                    async with asyncio.timeout(drain_timeout):
                        await self._quiesce(abort=False)
                except TimeoutError:
                    await self._quiesce(abort=True)
        finally:
            self.lifecycle = Lifecycle.STOPPED
            self._stopped.set()
        await aclose_all([*self._providers.owned(), *self._backends])
        log.info("engine stopped", engine_id=self.engine_id)

    async def _quiesce(self, abort: bool) -> None:
        """Wait until no admission is in progress and every run has ended."""
        if abort:
            self._abort_all()
        await self._admissions.settled()
        runs = list(self._runs.values())
        if abort:
            self._abort_all()
        await asyncio.gather(*(finished(run) for run in runs))

    def _abort_all(self) -> None:
        for run in list(self._runs.values()):
            run.cancel(RunStatus.ABORTED)

    def abort_session(self, session_id: str, user_id: str | None = None) -> bool:
        """Abort the run in progress on ``session_id`` (only if ``user_id``'s, when
        given); False if there is none."""
        return Run.abort(self._by_session.get(session_id), user_id)

    def abort_run(self, run_id: str, user_id: str | None = None) -> bool:
        """Abort a run of this engine (only if ``user_id``'s, when given); False if it
        is not running here."""
        return Run.abort(self._runs.get(run_id), user_id)

    async def health(self) -> ProbeReport:
        """The health probe's report for this engine's lifecycle and load."""
        return await self.health_probe.health(self.lifecycle.value, len(self._runs))

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
        run = await self._admissions.admit_unread(user_id, input, session_id, options)
        return await finished(run)

    async def run_streaming(
        self,
        user_id: str,
        input: str | UserMessage,
        session_id: str | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Start a turn and return its events as they happen, ending with ``run_end``.

        Raises before returning when the run cannot start: EngineNotStartedError,
        EngineDrainingError, InvalidArgumentError (bad input, option or id: nothing is
        claimed), SessionNotFoundError (unknown session, or one of another user),
        SessionBusyError, CapacityError. A rate-limited run yields a single ``run_end``
        with status ``rate_limited``.
        """
        run = await self._admissions.admit(user_id, input, session_id, options)
        await run.log_ready.wait()
        if not run.logged or self.event_log is None:
            return run.events()
        return replay(await self.event_log.subscribe(run.run_id))

    async def start_run(
        self,
        user_id: str,
        input: str | UserMessage,
        session_id: str | None = None,
        options: RunOptions | Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Start a turn in the background and return at once, its events on their way to
        the event log (without one, they are dropped: use the result). Raises the
        admission errors of :meth:`run_streaming`, and RateLimitedError."""
        run = await self._admissions.admit_unread(user_id, input, session_id, options)
        return RunHandle(run.run_id, run.session.id, run=run)

    async def wait_run(self, run_id: str) -> RunResult:
        """The result of a run of this engine, once it ended (one of the last 1,024 that
        ended, or one in flight); RunNotFoundError otherwise."""
        run = self._runs.get(run_id) or self._admissions.recent.get(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return await finished(run)

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[LogEntry]:
        """A run's logged events after the event id ``after`` (from the start when
        ``None``), then the live ones until ``run_end``; see :meth:`EventLog.subscribe`.
        ConfigError when the engine has no event log."""
        if self.event_log is None:
            raise ConfigError(
                f"engine {self.engine_id} has no event log to subscribe to: configure "
                "[event_log] or pass SessionEngine(event_log=...)"
            )
        return await self.event_log.subscribe(run_id, after)

    def _check_accepting(self) -> None:
        if self.lifecycle is Lifecycle.IDLE:
            raise EngineNotStartedError(f"engine {self.engine_id} is not started; call start()")
        if self.lifecycle is not Lifecycle.RUNNING:
            raise EngineDrainingError(
                f"engine {self.engine_id} is {self.lifecycle.value} and accepts no new runs"
            )

    # --- what a run uses --------------------------------------------------------------

    @property
    def default_provider(self) -> ModelProvider:
        assert self._providers.default is not None
        return self._providers.default

    @default_provider.setter
    def default_provider(self, provider: ModelProvider) -> None:
        self._providers.default = provider

    @property
    def providers(self) -> dict[str, ModelProvider]:
        return self._providers.by_name

    async def _guard(self, call: Callable[[], Awaitable[AssistantMessage]]) -> AssistantMessage:
        if self.circuit_breaker is None:
            return await call()
        result: AssistantMessage = await self.circuit_breaker.call(call)
        return result
