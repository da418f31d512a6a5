"""The pool on the memory queue against a small reference model (hypothesis): random jobs
over a few sessions, handlers that fail some attempts, workers that die holding a lease,
pools stopped without drain and replaced. Whatever happens, each session's jobs run in
enqueue order one at a time, the pool never runs more than ``concurrency`` jobs, and
every job ends as the model says (completed after its failures, or dead after
``max_attempts``)."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectra_core import SessionManager
from spectra_core.testing import FakeClock
from spectra_core.workers import Job, JobRetry, JobStatus, SequentialWorkerPool

pytestmark = pytest.mark.needs_plugins

RETRY = JobRetry(max_attempts=3, wait_initial=1.0, wait_max=2.0)
LEASE = 5.0


@attrs.define
class Spec:
    session: str
    failures: int


@attrs.define
class Expected:
    status: JobStatus
    attempts: int
    handler_calls: int


def model(spec: Spec, ghosted: bool) -> Expected:
    """What becomes of one job: a ghost lease (a worker that died) is a failed attempt
    that never reached the handler."""
    failing = spec.failures + int(ghosted)
    if failing >= RETRY.max_attempts:
        return Expected(JobStatus.DEAD, RETRY.max_attempts, RETRY.max_attempts - int(ghosted))
    return Expected(JobStatus.COMPLETED, failing + 1, spec.failures + 1)


class Handler:
    def __init__(self, specs: dict[str, Spec], clock: FakeClock) -> None:
        self.specs = specs
        self.clock = clock
        self.left = {job_id: s.failures for job_id, s in specs.items()}
        self.calls: list[str] = []  # job ids of calls that ran to an outcome
        self.active: dict[str, str] = {}
        self.peak = 0
        self.violations: list[str] = []

    async def __call__(self, job: Job) -> Any:
        if job.session_id in self.active:
            self.violations.append(f"{job.id} overlapped {self.active[job.session_id]}")
        self.active[job.session_id] = job.id
        self.peak = max(self.peak, len(self.active))
        try:
            await self.clock.sleep(0.5)  # still running when the next step stops the pool
        except asyncio.CancelledError:
            del self.active[job.session_id]
            raise
        del self.active[job.session_id]
        self.calls.append(job.id)
        if self.left[job.id] > 0:
            self.left[job.id] -= 1
            raise RuntimeError("planned failure")
        return job.id


async def scenario(
    manager: SessionManager, specs: list[Spec], concurrency: int, ghosts: int, restart: int | None
) -> None:
    from spectra_memory import MemoryJobQueue

    clock = FakeClock()
    queue = MemoryJobQueue(lease_timeout=LEASE, retry=RETRY, clock=clock)
    ids = [(await queue.enqueue(s.session, {"input": "x"})).id for s in specs]
    by_id = dict(zip(ids, specs, strict=True))
    ghosted = set()
    for _ in range(ghosts):
        lease = await queue.lease("ghost")
        if lease is not None:
            ghosted.add(lease.job.id)
    handler = Handler(by_id, clock)

    def pool() -> SequentialWorkerPool:
        return SequentialWorkerPool(
            manager, queue=queue, concurrency=concurrency, clock=clock, idle_wait=0.5
        )

    current = pool()
    await current.process(handler)
    for step in range(3_000):
        for _ in range(20):
            await asyncio.sleep(0)
        if step == restart:
            await current.stop(drain=False)
            current = pool()
            await current.process(handler)
        jobs = [await queue.get(i) for i in ids]
        if all(j.status.finished for j in jobs):
            break
        clock.advance(0.5)
    await current.stop()

    assert not handler.violations, handler.violations
    assert handler.peak <= concurrency
    for job_id, spec in by_id.items():
        want = model(spec, job_id in ghosted)
        got = await queue.get(job_id)
        assert (got.status, got.attempts) == (want.status, want.attempts), (spec, got)
        assert handler.calls.count(job_id) == want.handler_calls
    for session in {s.session for s in specs}:
        order = [i for i in ids if by_id[i].session == session]
        ran = [i for i in handler.calls if by_id[i].session == session]
        firsts = list(dict.fromkeys(ran))
        assert firsts == [i for i in order if model(by_id[i], i in ghosted).handler_calls]
        assert ran == sorted(ran, key=order.index), "a later job ran before an earlier one"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    specs=st.lists(
        st.builds(Spec, st.sampled_from(["a", "b", "c"]), st.integers(0, 4)),
        min_size=1,
        max_size=10,
    ),
    concurrency=st.integers(1, 4),
    ghosts=st.integers(0, 2),
    restart=st.none() | st.integers(0, 10),
)
def test_pool_matches_the_model(
    manager: SessionManager,
    specs: list[Spec],
    concurrency: int,
    ghosts: int,
    restart: int | None,
) -> None:
    asyncio.run(scenario(manager, specs, concurrency, ghosts, restart))
