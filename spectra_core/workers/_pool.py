"""SequentialWorkerPool: background turns, one at a time per session, many sessions at once."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError, RateLimitedError, SpectraError
from ..ids import validate_id
from ..manager import SessionManager
from ._queue import Job, JobQueue, Lease, LeaseLostError, check_json

if TYPE_CHECKING:
    from ..engine import SessionEngine

__all__ = ["Handler", "JobFailed", "SequentialWorkerPool"]

log = structlog.get_logger("spectra.workers")

#: What a pool runs for each job; its return value (JSON-serializable) is the job's result.
Handler = Callable[[Job], Awaitable[Any]]


class JobFailed(SpectraError):
    """Raised by a handler to fail its job with this message: ``retry=False`` sends it to
    the dead letters at once, ``retry_after`` asks for at least that wait before the next
    attempt. Any other exception is a retryable failure."""

    def __init__(self, message: str, *, retry: bool = True, retry_after: float | None = None):
        self.retry = retry
        self.retry_after = retry_after
        super().__init__(message)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SequentialWorkerPool:
    """Runs queued jobs: those of one session strictly in enqueue order, one at a time
    (across every pool sharing the queue), those of different sessions concurrently, up
    to ``concurrency`` in this pool.

    ``process()`` with no handler runs each job as a turn of its session through
    ``engine`` (see :func:`create_agent_runner`); without an engine the pool makes one
    over ``session_manager`` (the offline ``echo`` provider) and stops it with the pool.
    While a handler runs, its lease is renewed every third of the queue's
    ``lease_timeout``; if the lease is lost anyway, the handler is cancelled.
    """

    def __init__(
        self,
        session_manager: SessionManager,
        *,
        queue: JobQueue,
        concurrency: int = 4,
        engine: SessionEngine | None = None,
        clock: Clock | None = None,
        worker_id: str | None = None,
        idle_wait: float = 1.0,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if idle_wait <= 0:
            raise InvalidArgumentError(f"idle_wait must be positive, got {idle_wait}")
        self.session_manager = session_manager
        self.queue = queue
        self.concurrency = concurrency
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.worker_id = worker_id or _default_worker_id()
        self.idle_wait = idle_wait
        self._own_engine = False
        self._handler: Handler | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- producing --------------------------------------------------------------------

    async def enqueue(
        self,
        session_id: str,
        input: str,
        *,
        options: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        """Queue a turn of ``session_id`` with ``input``; its job id. ``options`` are run
        options (JSON-serializable: tools are given to the runner, not per job); ``key``
        makes the call idempotent."""
        from ..engine import RunOptions

        validate_id(session_id)
        if not isinstance(input, str) or not input.strip():
            raise InvalidArgumentError(f"job input must be a non-empty string, got {input!r}")
        opts = dict(options or {})
        check_json(opts, "job options")
        if "tools" in opts:
            raise InvalidArgumentError(
                "job options cannot carry tools (they are not serializable); give tools to "
                "create_agent_runner(options=...) instead"
            )
        try:
            RunOptions.coerce(opts)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"job options are not valid run options: {exc}") from None
        job = await self.queue.enqueue(session_id, {"input": input, "options": opts}, key=key)
        return job.id

    async def job(self, job_id: str) -> Job:
        """The job as now: status, result, attempts, error (JobNotFound if unknown)."""
        return await self.queue.get(job_id)

    async def wait(self, job_id: str, *, poll: float = 0.05) -> Job:
        """Wait until the job is completed or dead, checking every ``poll`` seconds of
        the pool's clock; the finished job."""
        while True:
            job = await self.queue.get(job_id)
            if job.status.finished:
                return job
            await self.clock.sleep(poll)

    # --- consuming --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._workers) and not self._stopping

    async def process(self, handler: Handler | None = None) -> None:
        """Start ``concurrency`` workers running ``handler`` (default: an agent turn)."""
        if self._stopping:
            raise InvalidArgumentError("this pool was stopped; make a new one")
        if self._workers:
            raise InvalidArgumentError("this pool is already processing; stop() it first")
        if handler is None:
            handler = await self._agent_handler()
        self._handler = handler
        self._workers = [
            asyncio.get_running_loop().create_task(self._work(f"{self.worker_id}-{n}"))
            for n in range(self.concurrency)
        ]
        log.info("worker pool started", worker_id=self.worker_id, concurrency=self.concurrency)

    async def stop(self, drain: bool = True) -> None:
        """Stop leasing jobs. ``drain=True`` lets running jobs finish; ``drain=False``
        cancels them and gives their jobs back to the queue (the attempt does not count).
        Queued jobs stay queued for the next pool."""
        if self._stopping:
            return
        self._stopping = True
        for task in self._workers:
            if drain and task in self._busy:
                continue
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._own_engine and self.engine is not None:
            await self.engine.stop(drain=drain)
        log.info("worker pool stopped", worker_id=self.worker_id, drain=drain)

    async def _agent_handler(self) -> Handler:
        from ..engine import SessionEngine
        from ._runner import create_agent_runner

        if self.engine is None:
            self.engine = SessionEngine(self.session_manager, clock=self.clock)
            self.engine.start()
            self._own_engine = True
        engine = self.engine

        async def run_turn(job: Job) -> Any:
            runner = create_agent_runner(self.session_manager, job.session_id, engine=engine)
            return await runner(job)

        return run_turn

    async def _work(self, worker_id: str) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            try:
                lease = await self.queue.lease(worker_id, wait=self.idle_wait)
            except Exception as exc:  # the queue's service is down: try again later
                log.warning(
                    "lease failed", worker_id=worker_id, error=f"{type(exc).__name__}: {exc}"
                )
                await self.clock.sleep(self.idle_wait)
                continue
            if lease is None:
                continue
            if self._stopping:
                await self.queue.release(lease)
                return
            self._busy.add(me)
            try:
                await self._run(lease)
            except Exception as exc:  # the outcome was not recorded; the lease will expire
                log.warning(
                    "job outcome not recorded",
                    job_id=lease.job.id,
                    error=f"{type(exc).__name__}: {exc}",
                )
            finally:
                self._busy.discard(me)

    async def _run(self, lease: Lease) -> None:
        assert self._handler is not None
        job = lease.job
        loop = asyncio.get_running_loop()
        work: asyncio.Task[Any] = loop.create_task(_call(self._handler, job))
        held = [lease]
        heartbeat = loop.create_task(self._renew(held, work))
        bound = log.bind(job_id=job.id, session_id=job.session_id, attempt=job.attempts)
        try:
            try:
                result = await asyncio.shield(work)
            except asyncio.CancelledError:
                if not work.done():  # the pool is stopping without drain
                    work.cancel()
                    await asyncio.gather(work, return_exceptions=True)
                    heartbeat.cancel()
                    await self._settle(self.queue.release(held[0]), bound)
                    raise
                if heartbeat.done() and not heartbeat.cancelled():
                    bound.warning("job dropped: its lease was lost")
                    return
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise
                await self._fail(held[0], "the handler was cancelled", None, True, bound)
            except JobFailed as exc:
                await self._fail(held[0], str(exc), exc.retry_after, exc.retry, bound)
            except RateLimitedError as exc:
                await self._fail(held[0], str(exc), exc.retry_after, True, bound)
            except Exception as exc:
                await self._fail(held[0], f"{type(exc).__name__}: {exc}", None, True, bound)
            else:
                try:
                    await self._settle(self.queue.complete(held[0], result), bound)
                except InvalidArgumentError as exc:
                    await self._fail(held[0], str(exc), None, False, bound)
                else:
                    bound.info("job completed")
        finally:
            heartbeat.cancel()

    async def _fail(
        self, lease: Lease, error: str, retry_after: float | None, retry: bool, bound: Any
    ) -> None:
        bound.warning("job failed", error=error)
        await self._settle(
            self.queue.fail(lease, error, retry_after=retry_after, retry=retry), bound
        )

    @staticmethod
    async def _settle(call: Awaitable[Job], bound: Any) -> None:
        try:
            await call
        except LeaseLostError as exc:
            bound.warning("job outcome not recorded", error=str(exc))

    async def _renew(self, held: list[Lease], work: asyncio.Task[Any]) -> None:
        """Keep the lease while ``work`` runs; cancel ``work`` if the lease is lost."""
        while not work.done():
            await self.clock.sleep(self.queue.lease_timeout / 3)
            try:
                held[0] = await self.queue.renew(held[0])
            except LeaseLostError:
                work.cancel()
                return


async def _call(handler: Handler, job: Job) -> Any:
    return await handler(job)
