"""A reference model of the job queue contract, and a hypothesis state machine that
checks a backend against it step by step (enqueue, lease, renew, complete, fail,
release, expire, time passing, workers that die holding leases)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ..errors import InvalidArgumentError
from ..workers import JobQueue, JobRetry, JobStatus, Lease, LeaseLostError
from .clock import FakeClock

__all__ = ["MakeQueue", "QueueMachine", "QueueModel"]

#: ``make_queue(clock, lease_timeout=..., retry=...) -> JobQueue``
MakeQueue = Callable[..., JobQueue]

SESSIONS = ["s1", "s2", "s3"]
WORKERS = ["w1", "w2", "w3"]
LEASE_TIMEOUT = 10.0
RETRY = JobRetry(max_attempts=3, wait_initial=1.0, wait_exp_base=2.0, wait_max=3.0)


@attrs.define
class ModelJob:
    id: str
    session_id: str
    payload: dict[str, Any]
    key: str | None
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    available_at: float = 0.0
    error: str | None = None
    token: str | None = None
    expires_at: float = 0.0


@attrs.define
class QueueModel:
    """What the queue should hold: every job, each session's line, the dead letters."""

    retry: JobRetry
    lease_timeout: float
    jobs: dict[str, ModelJob] = attrs.field(factory=dict)
    lines: dict[str, list[str]] = attrs.field(factory=dict)
    keys: dict[str, str] = attrs.field(factory=dict)
    dead: list[str] = attrs.field(factory=list)

    def candidates(self, now: float) -> set[str]:
        out = set()
        for line in self.lines.values():
            head = self.jobs[line[0]]
            if head.status is JobStatus.QUEUED and head.available_at <= now:
                out.add(head.id)
        return out

    def add(
        self, job_id: str, session_id: str, payload: dict[str, Any], key: str | None, now: float
    ) -> None:
        self.jobs[job_id] = ModelJob(job_id, session_id, payload, key, available_at=now)
        self.lines.setdefault(session_id, []).append(job_id)
        if key is not None:
            self.keys[key] = job_id

    def leased(self, job_id: str, token: str, now: float) -> None:
        job = self.jobs[job_id]
        job.status, job.attempts, job.token = JobStatus.RUNNING, job.attempts + 1, token
        job.expires_at = now + self.lease_timeout

    def holds(self, lease: Lease) -> bool:
        job = self.jobs[lease.job.id]
        return job.status is JobStatus.RUNNING and job.token == lease.token

    def finish(self, job: ModelJob, status: JobStatus, error: str | None) -> None:
        job.status, job.token, job.error = status, None, error
        line = self.lines[job.session_id]
        line.remove(job.id)
        if not line:
            del self.lines[job.session_id]
        if status is JobStatus.DEAD:
            self.dead.append(job.id)

    def fail(
        self, job: ModelJob, error: str, now: float, retry_after: float | None, retry: bool
    ) -> None:
        if not retry or self.retry.gives_up(job.attempts):
            self.finish(job, JobStatus.DEAD, error)
            return
        wait = max(self.retry.backoff(job.attempts), retry_after or 0.0)
        job.status, job.token, job.error = JobStatus.QUEUED, None, error
        job.available_at = now + wait

    def release(self, job: ModelJob, now: float) -> None:
        job.status, job.token, job.attempts, job.available_at = (
            JobStatus.QUEUED,
            None,
            job.attempts - 1,
            now,
        )

    def expire(self, now: float) -> set[str]:
        out = set()
        for job in self.jobs.values():
            if job.status is JobStatus.RUNNING and job.expires_at <= now:
                self.fail(job, "lease expired", now, None, True)
                out.add(job.id)
        return out


class QueueMachine(RuleBasedStateMachine):
    """Subclass with ``make_queue`` set (see :class:`JobQueueConformance`)."""

    make_queue: MakeQueue

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.queue = self.make_queue(self.clock, lease_timeout=LEASE_TIMEOUT, retry=RETRY)
        self.model = QueueModel(RETRY, LEASE_TIMEOUT)
        self.leases: list[Lease] = []  # every lease handed out, held or long lost

    def teardown(self) -> None:
        self.loop.run_until_complete(self.queue.aclose())
        self.loop.close()

    def _run(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    def _outcome(self, aw: Any) -> Any:
        async def attempt() -> Any:
            try:
                return await aw
            except (LeaseLostError, InvalidArgumentError) as exc:
                return exc

        return self._run(attempt())

    @rule(
        session=st.sampled_from(SESSIONS),
        key=st.none() | st.sampled_from(["k1", "k2"]),
        n=st.integers(0, 2),
    )
    def enqueue(self, session: str, key: str | None, n: int) -> None:
        payload = {"input": f"job {n}"}
        result = self._outcome(self.queue.enqueue(session, payload, key=key))
        known = self.model.keys.get(key) if key is not None else None
        if known is not None:
            first = self.model.jobs[known]
            if first.session_id == session and first.payload == payload:
                assert result.id == known, "the same key enqueued a second job"
            else:
                assert isinstance(result, InvalidArgumentError), "a reused key was accepted"
            return
        assert not isinstance(result, Exception), result
        assert result.status is JobStatus.QUEUED and result.attempts == 0
        self.model.add(result.id, session, payload, key, self.clock.time())

    @rule(worker=st.sampled_from(WORKERS))
    def lease(self, worker: str) -> None:
        now = self.clock.time()
        self.model.expire(now)
        expected = self.model.candidates(now)
        lease = self._run(self.queue.lease(worker))
        if not expected:
            assert lease is None, f"leased {lease.job.id} though no job's turn had come"
            return
        assert lease is not None, f"no lease though {sorted(expected)} could run"
        assert lease.job.id in expected, f"leased {lease.job.id}, not one of {expected}"
        assert lease.worker_id == worker and lease.job.status is JobStatus.RUNNING
        self.model.leased(lease.job.id, lease.token, now)
        self.leases.append(lease)

    def _pick(self, index: int) -> Lease:
        return self.leases[index % len(self.leases)]

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 50))
    def complete(self, index: int) -> None:
        lease = self._pick(index)
        held = self.model.holds(lease)
        result = self._outcome(self.queue.complete(lease, {"done": lease.job.id}))
        if not held:
            assert isinstance(result, LeaseLostError), "a lost lease completed its job"
            return
        assert result.status is JobStatus.COMPLETED and result.result == {"done": lease.job.id}
        job = self.model.jobs[lease.job.id]
        self.model.finish(job, JobStatus.COMPLETED, job.error)

    @precondition(lambda self: self.leases)
    @rule(
        index=st.integers(0, 50),
        retry=st.booleans(),
        retry_after=st.none() | st.sampled_from([0.5, 5.0]),
    )
    def fail(self, index: int, retry: bool, retry_after: float | None) -> None:
        lease = self._pick(index)
        held = self.model.holds(lease)
        result = self._outcome(self.queue.fail(lease, "boom", retry_after=retry_after, retry=retry))
        if not held:
            assert isinstance(result, LeaseLostError), "a lost lease failed its job"
            return
        self.model.fail(
            self.model.jobs[lease.job.id], "boom", self.clock.time(), retry_after, retry
        )

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 50))
    def release(self, index: int) -> None:
        lease = self._pick(index)
        held = self.model.holds(lease)
        result = self._outcome(self.queue.release(lease))
        if not held:
            assert isinstance(result, LeaseLostError), "a lost lease released its job"
            return
        self.model.release(self.model.jobs[lease.job.id], self.clock.time())

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 50))
    def renew(self, index: int) -> None:
        lease = self._pick(index)
        held = self.model.holds(lease)
        result = self._outcome(self.queue.renew(lease))
        if not held:
            assert isinstance(result, LeaseLostError), "a lost lease was renewed"
            return
        assert result.token == lease.token
        self.model.jobs[lease.job.id].expires_at = self.clock.time() + LEASE_TIMEOUT
        self.leases.append(result)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 7.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def expire(self) -> None:
        expected = self.model.expire(self.clock.time())
        expired = self._run(self.queue.expire())
        assert {j.id for j in expired} == expected

    @invariant()
    def jobs_match_the_model(self) -> None:
        for job in self.model.jobs.values():
            got = self._run(self.queue.get(job.id))
            what = f"job {job.id} of {job.session_id}"
            assert got.status is job.status, f"{what}: {got.status} != {job.status}"
            assert got.attempts == job.attempts, f"{what}: attempts {got.attempts}"
            if job.status is not JobStatus.COMPLETED:
                assert (got.error is None) == (job.error is None), f"{what}: error {got.error}"
            if job.status is JobStatus.QUEUED:
                assert abs(got.available_at - job.available_at) < 1e-6, f"{what}: available_at"

    @invariant()
    def one_running_job_per_session(self) -> None:
        running = [j.session_id for j in self.model.jobs.values() if j.status is JobStatus.RUNNING]
        assert len(running) == len(set(running))

    @invariant()
    def dead_letters_match(self) -> None:
        dead = self._run(self.queue.dead_letters())
        assert [j.id for j in dead] == self.model.dead
        assert all(j.error for j in dead)
