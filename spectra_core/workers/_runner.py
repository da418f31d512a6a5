"""create_agent_runner: a handler bound to a session that runs one turn through the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConflictError,
    InvalidArgumentError,
    SessionNotFoundError,
)
from ..ids import validate_id
from ..manager import SessionManager
from ..models import AuditEntry, Session
from ._pool import JobFailed
from ._queue import Job

if TYPE_CHECKING:
    from ..engine import RunOptions, RunResult, SessionEngine

__all__ = ["JOB_FINISHED", "AgentRunner", "create_agent_runner"]

#: Audit entry the runner appends to a session when a job's turn completed.
JOB_FINISHED = "job_finished"
_SAVE_TRIES = 5


class AgentRunner:
    """Runs turns of one session through an engine (rate limits, breaker, persistence,
    events all apply). Called with a :class:`Job` it is a pool handler: the turn's outcome
    becomes the job's result, and a ``job_finished`` audit entry in the session makes a
    retried job return that result instead of running the turn again."""

    def __init__(
        self,
        session_manager: SessionManager,
        session_id: str,
        *,
        engine: SessionEngine,
        options: RunOptions | Mapping[str, Any] | None = None,
        user_id: str | None = None,
    ) -> None:
        from ..engine import RunOptions

        self.session_manager = session_manager
        self.session_id = validate_id(session_id)
        self.engine = engine
        self.options = RunOptions.coerce(options)
        self.user_id = user_id

    async def run(
        self, input: str, options: RunOptions | Mapping[str, Any] | None = None
    ) -> RunResult:
        """Run one turn with ``input``; ``options`` override the runner's own."""
        user_id = self.user_id or (await self._load()).user_id or "worker"
        return await self._turn(user_id, input, self._merge(options))

    def _merge(self, options: RunOptions | Mapping[str, Any] | None) -> RunOptions:
        from ..engine import RunOptions

        if options is None:
            return self.options
        extra = options if isinstance(options, Mapping) else _given(options)
        return RunOptions.coerce({**_given(self.options), **dict(extra)})

    async def _turn(self, user_id: str, input: str, merged: RunOptions) -> RunResult:
        try:
            return await self.engine.run(user_id, input, self.session_id, merged)
        except asyncio.CancelledError:
            self.engine.abort_session(self.session_id)
            raise

    async def __call__(self, job: Job) -> dict[str, Any]:
        """Run ``job`` as a turn; its result dict, or JobFailed saying why not."""
        if job.session_id != self.session_id:
            raise JobFailed(
                f"job {job.id} is for session {job.session_id!r}, this runner for "
                f"{self.session_id!r}",
                retry=False,
            )
        try:
            session = await self._load()
        except SessionNotFoundError as exc:
            raise JobFailed(str(exc), retry=False) from None
        done = _finished_before(session, job.id)
        if done is not None:
            return done
        user_id = self.user_id or session.user_id or "worker"
        try:
            merged = self._merge(job.options)
        except (TypeError, ValueError) as exc:
            raise JobFailed(f"job options are not valid run options: {exc}", retry=False) from None
        try:
            result = await self._turn(user_id, job.input, merged)
        except (InvalidArgumentError, SessionNotFoundError) as exc:
            raise JobFailed(f"{type(exc).__name__}: {exc}", retry=False) from None
        outcome = {
            "run_id": result.run_id,
            "session_id": result.session_id,
            "status": result.status.value,
            "text": result.text,
            "error": result.error,
            "turns": result.turns,
        }
        if result.status.value != "completed":
            retry = result.status.value != "aborted"
            raise JobFailed(f"run {result.status.value}: {result.error}", retry=retry)
        await self._record(job, outcome)
        return outcome

    async def _load(self) -> Session:
        return await self.session_manager.load(self.session_id, active_branch=True)

    async def _record(self, job: Job, outcome: dict[str, Any]) -> None:
        for attempt in range(1, _SAVE_TRIES + 1):
            session: Session = await self.session_manager.load(self.session_id, active_branch=True)
            self.session_manager.append_audit(
                session,
                JOB_FINISHED,
                {"job_id": job.id, "attempt": job.attempts, "result": outcome},
            )
            try:
                await self.session_manager.save(session)
                return
            except ConflictError:
                if attempt == _SAVE_TRIES:
                    raise  # another writer keeps saving in between; the pool retries


def _finished_before(session: Session, job_id: str) -> dict[str, Any] | None:
    """The recorded outcome of ``job_id`` if its turn completed. Jobs of a session run
    one at a time, so a retried job's record, if any, is the last ``job_finished``."""
    for entry in reversed(session.entries):
        if isinstance(entry, AuditEntry) and entry.event_type == JOB_FINISHED:
            if entry.details.get("job_id") != job_id:
                return None
            outcome: dict[str, Any] = entry.details.get("result") or {}
            return outcome
    return None


def _given(options: RunOptions) -> dict[str, Any]:
    """The fields of ``options`` as keyword arguments."""
    import attrs

    return {a.name: getattr(options, a.name) for a in attrs.fields(type(options))}


def create_agent_runner(
    session_manager: SessionManager,
    session: Session | str,
    *,
    engine: SessionEngine | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    user_id: str | None = None,
) -> AgentRunner:
    """A runner of turns of ``session`` (a Session or its id) through ``engine``.

    Without an engine, one is made over ``session_manager`` and started (the offline
    ``echo`` provider unless ``options`` name a model). ``options`` (tools included)
    apply to every turn; a job's own options override them. ``user_id`` defaults to the
    session's owner.
    """
    from ..engine import SessionEngine

    if engine is None:
        engine = SessionEngine(session_manager, clock=session_manager.clock)
        engine.start()
    session_id = session.id if isinstance(session, Session) else session
    return AgentRunner(session_manager, session_id, engine=engine, options=options, user_id=user_id)
