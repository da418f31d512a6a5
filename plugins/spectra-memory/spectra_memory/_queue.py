"""The ``memory`` job queue: one process, jobs lost on restart.

Sessions whose head job may run are kept in a heap by (available_at, enqueue order), so
a lease is a pop; entries made stale by a later change are skipped when popped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

import attrs

from spectra_core import Clock, InvalidArgumentError, SystemClock
from spectra_core.durations import Duration
from spectra_core.workers import (
    Job,
    JobNotFound,
    JobQueueBase,
    JobRetry,
    JobStatus,
    Lease,
    LeaseLostError,
    check_enqueue,
    check_json,
)

__all__ = ["MemoryJobQueue", "MemoryQueueOptions"]


@attrs.frozen
class MemoryQueueOptions:
    """Options of the ``memory`` job queue (``[queue] backend = "memory"``).

    ``lease_timeout``: how long a worker holds a job without renewing (default 30s).
    ``max_attempts``: failed attempts before a job goes to the dead letters (default 5).
    ``wait_initial``, ``wait_max``, ``wait_exp_base``: the exponential backoff between
    attempts (defaults 1s, 60s, 2). ``keep_finished``: most finished jobs remembered for
    ``job()`` and idempotency keys (default 10,000; the oldest are forgotten first).
    """

    lease_timeout: Duration = attrs.field(default=Duration(30.0))
    max_attempts: int = 5
    wait_initial: Duration = attrs.field(default=Duration(1.0))
    wait_max: Duration = attrs.field(default=Duration(60.0))
    wait_exp_base: float = 2.0
    keep_finished: int = 10_000


@attrs.define
class _Record:
    job: Job
    seq: int
    token: str | None = None


class MemoryJobQueue(JobQueueBase):
    """A :class:`~spectra_core.workers.JobQueue` in process memory."""

    def __init__(
        self,
        *,
        lease_timeout: float = 30.0,
        retry: JobRetry | None = None,
        clock: Clock | None = None,
        keep_finished: int = 10_000,
    ) -> None:
        if lease_timeout <= 0:
            raise InvalidArgumentError(f"lease_timeout must be positive, got {lease_timeout}")
        if keep_finished < 0:
            raise InvalidArgumentError(f"keep_finished must be >= 0, got {keep_finished}")
        self.lease_timeout = float(lease_timeout)
        self.retry = retry or JobRetry()
        self.clock: Clock = clock or SystemClock()
        self.keep_finished = keep_finished
        self._jobs: dict[str, _Record] = {}
        self._keys: dict[str, str] = {}
        self._lines: dict[str, deque[str]] = {}  # session -> unfinished job ids, in order
        self._ready: list[tuple[float, int, str]] = []  # (available_at, seq, job id)
        self._running: dict[str, _Record] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._seq = itertools.count()
        self._changed = asyncio.Event()

    @classmethod
    def from_options(cls, options: MemoryQueueOptions) -> MemoryJobQueue:
        return cls(
            lease_timeout=options.lease_timeout,
            retry=JobRetry(
                max_attempts=options.max_attempts,
                wait_initial=options.wait_initial,
                wait_max=options.wait_max,
                wait_exp_base=options.wait_exp_base,
            ),
            keep_finished=options.keep_finished,
        )

    # --- producing --------------------------------------------------------------------

    async def enqueue(
        self, session_id: str, payload: Mapping[str, Any], *, key: str | None = None
    ) -> Job:
        check_enqueue(session_id, payload, key)
        data = dict(payload)
        if key is not None and key in self._keys:
            existing = self._jobs[self._keys[key]].job
            if existing.session_id != session_id or dict(existing.payload) != data:
                raise InvalidArgumentError(
                    f"job key {key!r} was already used for job {existing.id} of session "
                    f"{existing.session_id!r} with another payload; use a new key"
                )
            return existing
        now = self.clock.time()
        job = Job(
            id=uuid.uuid4().hex,
            session_id=session_id,
            payload=data,
            key=key,
            enqueued_at=now,
            available_at=now,
        )
        record = _Record(job, next(self._seq))
        self._jobs[job.id] = record
        if key is not None:
            self._keys[key] = job.id
        line = self._lines.setdefault(session_id, deque())
        line.append(job.id)
        if len(line) == 1:
            self._push(record)
        self._notify()
        return job

    # --- consuming --------------------------------------------------------------------

    async def lease(self, worker_id: str, *, wait: float = 0.0) -> Lease | None:
        if not isinstance(worker_id, str) or not worker_id:
            raise InvalidArgumentError(f"worker_id must be a non-empty string, got {worker_id!r}")
        deadline = self.clock.monotonic() + max(wait, 0.0)
        while True:
            self._expire_due()
            lease = self._pop_ready(worker_id)
            remaining = deadline - self.clock.monotonic()
            if lease is not None or remaining <= 0:
                return lease
            await self._wait_change(remaining)

    async def renew(self, lease: Lease) -> Lease:
        record = self._held(lease)
        expires = self.clock.time() + self.lease_timeout
        record.job = attrs.evolve(record.job, lease_expires_at=expires)
        return attrs.evolve(lease, job=record.job, expires_at=expires)

    async def complete(self, lease: Lease, result: Any = None) -> Job:
        record = self._held(lease)
        check_json(result, f"result of job {record.job.id}")
        self._finish(record, JobStatus.COMPLETED, result=result, error=record.job.error)
        return record.job

    async def fail(
        self, lease: Lease, error: str, *, retry_after: float | None = None, retry: bool = True
    ) -> Job:
        record = self._held(lease)
        self._failed(record, str(error), retry_after, retry)
        return record.job

    async def release(self, lease: Lease) -> Job:
        record = self._held(lease)
        self._running.pop(record.job.id, None)
        record.token = None
        record.job = attrs.evolve(
            record.job,
            status=JobStatus.QUEUED,
            attempts=record.job.attempts - 1,
            available_at=self.clock.time(),
            worker_id=None,
            lease_expires_at=None,
        )
        self._push(record)
        self._notify()
        return record.job

    async def expire(self) -> list[Job]:
        return self._expire_due()

    # --- reading ----------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        record = self._jobs.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record.job

    async def dead_letters(self) -> list[Job]:
        return [self._jobs[i].job for i in self._dead]

    # --- internals --------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, remaining: float) -> None:
        """Until something changes, the next backoff or lease ends, or ``remaining``."""
        now = self.clock.time()
        due = [remaining]
        if self._ready:
            due.append(self._ready[0][0] - now)
        due.extend((r.job.lease_expires_at or now) - now for r in self._running.values())
        changed = asyncio.ensure_future(self._changed.wait())
        timer = asyncio.ensure_future(self.clock.sleep(max(min(due), 0.0)))
        try:
            await asyncio.wait({changed, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            timer.cancel()

    def _push(self, record: _Record) -> None:
        heapq.heappush(self._ready, (record.job.available_at, record.seq, record.job.id))

    def _pop_ready(self, worker_id: str) -> Lease | None:
        now = self.clock.time()
        while self._ready and self._ready[0][0] <= now:
            available_at, _, job_id = heapq.heappop(self._ready)
            record = self._jobs.get(job_id)
            if (
                record is None
                or record.job.status is not JobStatus.QUEUED
                or record.job.available_at != available_at
                or self._lines[record.job.session_id][0] != job_id
            ):
                continue  # stale entry: the job moved on since it was pushed
            token = uuid.uuid4().hex
            record.token = token
            record.job = attrs.evolve(
                record.job,
                status=JobStatus.RUNNING,
                attempts=record.job.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=now + self.lease_timeout,
            )
            self._running[job_id] = record
            return Lease(
                job=record.job,
                token=token,
                worker_id=worker_id,
                expires_at=now + self.lease_timeout,
            )
        return None

    def _held(self, lease: Lease) -> _Record:
        record = self._jobs.get(lease.job.id)
        if (
            record is None
            or record.job.status is not JobStatus.RUNNING
            or record.token != lease.token
        ):
            status = record.job.status.value if record is not None else "forgotten"
            raise LeaseLostError(
                f"worker {lease.worker_id!r} no longer holds job {lease.job.id} "
                f"(it is {status}, its lease having run out or ended); nothing was written"
            )
        return record

    def _expire_due(self) -> list[Job]:
        now = self.clock.time()
        out = []
        for record in list(self._running.values()):
            expires = record.job.lease_expires_at
            if expires is not None and expires <= now:
                worker = record.job.worker_id
                self._failed(record, f"lease expired: worker {worker!r} stopped renewing it", None)
                out.append(record.job)
        return out

    def _failed(
        self, record: _Record, error: str, retry_after: float | None, retry: bool = True
    ) -> None:
        job = record.job
        if not retry or self.retry.gives_up(job.attempts):
            self._finish(record, JobStatus.DEAD, result=None, error=error)
            return
        self._running.pop(job.id, None)
        record.token = None
        wait = max(self.retry.backoff(job.attempts), retry_after or 0.0)
        record.job = attrs.evolve(
            job,
            status=JobStatus.QUEUED,
            available_at=self.clock.time() + wait,
            worker_id=None,
            lease_expires_at=None,
            error=error,
        )
        self._push(record)
        self._notify()

    def _finish(
        self, record: _Record, status: JobStatus, *, result: Any, error: str | None
    ) -> None:
        job = record.job
        self._running.pop(job.id, None)
        record.token = None
        record.job = attrs.evolve(
            job,
            status=status,
            result=result,
            error=error,
            worker_id=None,
            lease_expires_at=None,
            finished_at=self.clock.time(),
        )
        line = self._lines[job.session_id]
        line.popleft()
        if line:
            self._push(self._jobs[line[0]])
        else:
            del self._lines[job.session_id]
        (self._dead if status is JobStatus.DEAD else self._finished)[job.id] = None
        self._forget_oldest()
        self._notify()

    def _forget_oldest(self) -> None:
        while len(self._finished) + len(self._dead) > self.keep_finished:
            table = self._finished if self._finished else self._dead
            job_id, _ = table.popitem(last=False)
            record = self._jobs.pop(job_id)
            if record.job.key is not None:
                self._keys.pop(record.job.key, None)
