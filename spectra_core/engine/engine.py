"""SessionEngine: load -> rate limit -> concurrency cap -> agent loop -> persist -> stream.

The facade: lifecycle (start, stop, drain, health) and the public run methods.
Admission lives in :mod:`._admission`, a run's supervision in :mod:`._run`.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, Literal

import attrs
import structlog

from ..agent.builtin import EchoProvider
from ..agent.provider import ModelProvider
from ..breaker import CircuitBreaker
from ..clock import Clock, SystemClock
from ..errors import (
    EngineDrainingError,
    EngineNotStartedError,
    InvalidArgumentError,
    PluginError,
    RateLimitedError,
)
from ..manager import SessionManager
from ..models import AssistantMessage, ModelRef, UserMessage
from ._admission import Admissions, BusyPolicy
from ._limits import AnyRateLimiter
from ._run import Run, Runner
from ._turn import RetryPolicy
from .events import RunEvent, RunStatus
from .options import RunOptions, RunResult

__all__ = ["BusyPolicy", "HealthReport", "Lifecycle", "ProviderResolver", "SessionEngine"]

log = structlog.get_logger("spectra.engine")

DEFAULT_MODEL = ModelRef("echo", provider="echo")
#: Builds the model provider of a name no provider was given for (config assembly
#: passes one that asks the plugin registry); raises PluginError for an unknown name.
ProviderResolver = Callable[[str], ModelProvider]


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


class SessionEngine:
    """Runs agents on sessions, one call per turn, with limits, caps, timeouts and drain.

    ``providers`` maps provider names to model providers; a model without a provider,
    or no model at all, uses ``provider`` (default: the offline ``echo`` provider).
    Providers named by a model but not given are built by ``resolve_provider`` (config
    assembly passes one backed by the plugin registry). ``busy`` says what a run on a
    session that is already running does: ``"reject"`` (SessionBusyError) or ``"wait"``
    for the running turn. At most ``max_queued_events`` unread events wait per run: a
    slower reader pauses the run (see docs/engine.md).
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
        registry: Any = None,
    ) -> None:
        if registry is not None:  # the engine no longer knows the plugin registry
            warnings.warn(
                "SessionEngine(registry=...) is deprecated; pass resolve_provider= (what "
                "spectra_core.config.provider_resolver(registry) returns)",
                DeprecationWarning,
                stacklevel=2,
            )
            resolve_provider = resolve_provider or (
                lambda name: registry.create("model_provider", name)
            )
        for name, value in [
            ("max_concurrent_sessions", max_concurrent_sessions),
            ("max_input_chars", max_input_chars),
            ("max_queued_events", max_queued_events),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
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
        self.resolve_provider = resolve_provider
        self.default_model = default_model or DEFAULT_MODEL
        self.busy: BusyPolicy = busy
        self.capacity_wait_ms = capacity_wait_ms
        self.max_input_chars = max_input_chars
        self.max_queued_events = max_queued_events
        self.retry = retry or RetryPolicy()
        self.clock: Clock = clock or SystemClock()
        self.lifecycle = Lifecycle.IDLE
        # providers closed by stop(): those built here, and all of them if asked
        self._owned: list[ModelProvider] = (
            [self.default_provider, *self.providers.values()] if close_providers else []
        )
        if provider is None:
            self._owned.append(self.default_provider)
        self._stopped = asyncio.Event()
        runner = Runner(
            manager=session_manager,
            engine_id=self.engine_id,
            clock=self.clock,
            retry=self.retry,
            default_model=self.default_model,
            session_timeout_ms=session_timeout_ms,
            provider_for=self._provider_for,
            guard=self._guard,
            on_end=self._run_ended,
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
        for owned in {id(p): p for p in self._owned}.values():
            try:
                await owned.aclose()
            except Exception as exc:
                log.warning("provider not closed", error=f"{type(exc).__name__}: {exc}")
        log.info("engine stopped", engine_id=self.engine_id)

    async def _quiesce(self, abort: bool) -> None:
        """Wait until no admission is in progress and every run has ended."""
        if abort:
            self._abort_all()
        await self._admissions.settled()
        runs = list(self._runs.values())
        if abort:
            self._abort_all()
        await asyncio.gather(*(run.done.wait() for run in runs))

    def _abort_all(self) -> None:
        for run in list(self._runs.values()):
            run.cancel(RunStatus.ABORTED)

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
        run = await self._admissions.admit(user_id, input, session_id, options)
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
        EngineDrainingError, InvalidArgumentError (bad input, option or id: nothing is
        claimed), SessionNotFound (unknown session, or one of another user),
        SessionBusyError, CapacityError. A rate-limited run yields a single ``run_end``
        with status ``rate_limited``.
        """
        run = await self._admissions.admit(user_id, input, session_id, options)
        return run.events()

    def _check_accepting(self) -> None:
        if self.lifecycle is Lifecycle.IDLE:
            raise EngineNotStartedError(f"engine {self.engine_id} is not started; call start()")
        if self.lifecycle is not Lifecycle.RUNNING:
            raise EngineDrainingError(
                f"engine {self.engine_id} is {self.lifecycle.value} and accepts no new runs"
            )

    def _run_ended(self, run: Run) -> None:
        self._admissions.ended(run)

    # --- what a run uses --------------------------------------------------------------

    def _provider_for(self, model: ModelRef) -> ModelProvider:
        name = model.provider
        if name is None:
            return self.default_provider
        if name in self.providers:
            return self.providers[name]
        if self.resolve_provider is not None:
            provider = self.resolve_provider(name)
            self.providers[name] = provider
            self._owned.append(provider)
            return provider
        if name == DEFAULT_MODEL.provider:
            return self.default_provider
        raise PluginError(
            f"no model provider {name!r}: pass providers={{{name!r}: ...}} or resolve_provider"
        )

    async def _guard(self, call: Callable[[], Awaitable[AssistantMessage]]) -> AssistantMessage:
        if self.circuit_breaker is None:
            return await call()
        result: AssistantMessage = await self.circuit_breaker.call(call)
        return result
