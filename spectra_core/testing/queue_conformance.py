"""The job queue conformance suite.

Subclass it in a plugin's tests and provide a ``make_queue`` fixture: a factory
``make_queue(clock, *, lease_timeout, retry)`` returning a fresh, empty queue that reads
time from ``clock`` (a :class:`~spectra_core.testing.FakeClock`), leases for
``lease_timeout`` seconds, retries by ``retry`` (a :class:`~spectra_core.workers.JobRetry`)
and remembers at least 1,000 finished jobs::

    class TestMyQueue(JobQueueConformance):
        @pytest.fixture
        def make_queue(self):
            def make(clock, *, lease_timeout, retry):
                return MyQueue(url, prefix=uuid4().hex, clock=clock,
                               lease_timeout=lease_timeout, retry=retry)
            return make

Besides the examples below, :meth:`test_state_machine` drives the queue with hypothesis
against :class:`~spectra_core.testing.queue_model.QueueModel`. Requires pytest-asyncio
and hypothesis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from ..errors import InvalidArgumentError, InvalidIdError
from ..workers import JobNotFound, JobQueue, JobRetry, JobStatus, LeaseLostError
from .clock import FakeClock
from .queue_model import MakeQueue, QueueMachine

__all__ = ["JobQueueConformance"]

LEASE = 30.0
RETRY = JobRetry(max_attempts=3, wait_initial=2.0, wait_exp_base=2.0, wait_max=5.0)


class JobQueueConformance:
    """The behaviour every job queue must show. See the module docstring."""

    #: Examples the state machine runs (raise it in a nightly job).
    state_machine_examples: int = 60

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def queue(self, make_queue: MakeQueue, clock: FakeClock) -> AsyncIterator[JobQueue]:
        queue = make_queue(clock, lease_timeout=LEASE, retry=RETRY)
        yield queue
        await queue.aclose()

    async def _drain(self, queue: JobQueue) -> None:
        assert await queue.lease("nobody") is None

    # --- enqueue ----------------------------------------------------------------------

    async def test_enqueue_returns_a_queued_job(self, queue: JobQueue, clock: FakeClock) -> None:
        job = await queue.enqueue("s1", {"input": "hi", "options": {"max_turns": 2}})
        assert (job.session_id, job.status, job.attempts) == ("s1", JobStatus.QUEUED, 0)
        assert (job.input, dict(job.options)) == ("hi", {"max_turns": 2})
        assert job.enqueued_at == clock.time()
        got = await queue.get(job.id)
        assert (got.id, got.status, dict(got.payload)) == (job.id, job.status, dict(job.payload))

    async def test_unknown_job_is_not_found(self, queue: JobQueue) -> None:
        with pytest.raises(JobNotFound, match="nope"):
            await queue.get("nope")

    @pytest.mark.parametrize(
        ("session_id", "payload", "key", "error"),
        [
            ("../etc", {"input": "x"}, None, InvalidIdError),
            ("", {"input": "x"}, None, InvalidIdError),
            ("s1", ["input"], None, InvalidArgumentError),
            ("s1", {"input": object()}, None, InvalidArgumentError),
            ("s1", {"input": float("nan")}, None, InvalidArgumentError),
            ("s1", {"input": "x"}, "", InvalidArgumentError),
            ("s1", {"input": "x"}, "k" * 257, InvalidArgumentError),
        ],
    )
    async def test_bad_enqueue_is_refused_before_anything_is_written(
        self, queue: JobQueue, session_id: str, payload: Any, key: Any, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            await queue.enqueue(session_id, payload, key=key)
        await self._drain(queue)

    async def test_enqueue_is_idempotent_by_key(self, queue: JobQueue) -> None:
        first = await queue.enqueue("s1", {"input": "x"}, key="order-1")
        again = await queue.enqueue("s1", {"input": "x"}, key="order-1")
        assert again.id == first.id
        with pytest.raises(InvalidArgumentError, match="order-1"):
            await queue.enqueue("s1", {"input": "other"}, key="order-1")
        with pytest.raises(InvalidArgumentError, match="order-1"):
            await queue.enqueue("s2", {"input": "x"}, key="order-1")
        lease = await queue.lease("w1")
        assert lease is not None and lease.job.id == first.id
        await queue.complete(lease, "ok")
        assert (await queue.enqueue("s1", {"input": "x"}, key="order-1")).id == first.id
        await self._drain(queue)

    # --- order and exclusivity --------------------------------------------------------

    async def test_one_session_runs_in_order_one_at_a_time(self, queue: JobQueue) -> None:
        ids = [(await queue.enqueue("s1", {"input": str(i)})).id for i in range(3)]
        seen = []
        for _ in ids:
            lease = await queue.lease("w1")
            assert lease is not None
            assert await queue.lease("w2") is None, "a second job of the session was leased"
            seen.append(lease.job.id)
            await queue.complete(lease, None)
        assert seen == ids

    async def test_sessions_run_side_by_side(self, queue: JobQueue) -> None:
        a = await queue.enqueue("a", {"input": "1"})
        b = await queue.enqueue("b", {"input": "1"})
        first, second = await queue.lease("w1"), await queue.lease("w2")
        assert first is not None and second is not None
        assert {first.job.id, second.job.id} == {a.id, b.id}

    async def test_oldest_ready_session_goes_first(self, queue: JobQueue) -> None:
        ids = [(await queue.enqueue(f"s{i}", {"input": "x"})).id for i in range(5)]
        leased = []
        for _ in ids:
            lease = await queue.lease("w")
            assert lease is not None
            leased.append(lease.job.id)
        assert leased == ids

    # --- outcomes ---------------------------------------------------------------------

    async def test_complete_records_the_result(self, queue: JobQueue, clock: FakeClock) -> None:
        job = await queue.enqueue("s1", {"input": "x"})
        lease = await queue.lease("w1")
        assert lease is not None
        assert (lease.job.status, lease.job.attempts, lease.worker_id) == (
            JobStatus.RUNNING,
            1,
            "w1",
        )
        assert lease.expires_at == clock.time() + LEASE
        done = await queue.complete(lease, {"text": "answer", "n": [1, 2]})
        assert (done.status, done.result, done.attempts) == (
            JobStatus.COMPLETED,
            {"text": "answer", "n": [1, 2]},
            1,
        )
        assert (await queue.get(job.id)).status is JobStatus.COMPLETED
        with pytest.raises(LeaseLostError):
            await queue.complete(lease, "again")

    async def test_a_result_that_is_not_json_is_refused(self, queue: JobQueue) -> None:
        await queue.enqueue("s1", {"input": "x"})
        lease = await queue.lease("w1")
        assert lease is not None
        with pytest.raises(InvalidArgumentError):
            await queue.complete(lease, {"bad": object()})
        assert (await queue.get(lease.job.id)).status is JobStatus.RUNNING
        await queue.complete(lease, "fine")

    async def test_failure_retries_after_backoff_and_holds_the_line(
        self, queue: JobQueue, clock: FakeClock
    ) -> None:
        first = await queue.enqueue("s1", {"input": "1"})
        second = await queue.enqueue("s1", {"input": "2"})
        lease = await queue.lease("w1")
        assert lease is not None
        failed = await queue.fail(lease, "model down")
        assert (failed.status, failed.error, failed.attempts) == (
            JobStatus.QUEUED,
            "model down",
            1,
        )
        assert failed.available_at == clock.time() + RETRY.backoff(1)
        clock.advance(RETRY.backoff(1) - 0.5)
        assert await queue.lease("w1") is None, "the second job overtook the failed first"
        clock.advance(0.5)
        again = await queue.lease("w2")
        assert again is not None and again.job.id == first.id and again.job.attempts == 2
        await queue.complete(again, "ok")
        nxt = await queue.lease("w1")
        assert nxt is not None and nxt.job.id == second.id

    async def test_retry_after_lengthens_the_wait(self, queue: JobQueue, clock: FakeClock) -> None:
        await queue.enqueue("s1", {"input": "1"})
        lease = await queue.lease("w1")
        assert lease is not None
        failed = await queue.fail(lease, "rate limited", retry_after=30.0)
        assert failed.available_at == clock.time() + 30.0

    async def test_dead_letter_after_max_attempts(self, queue: JobQueue, clock: FakeClock) -> None:
        job = await queue.enqueue("s1", {"input": "1"})
        after = await queue.enqueue("s1", {"input": "2"})
        for attempt in range(1, RETRY.max_attempts + 1):
            clock.advance(RETRY.wait_max)
            lease = await queue.lease("w1")
            assert lease is not None and lease.job.id == job.id
            assert lease.job.attempts == attempt
            failed = await queue.fail(lease, f"boom {attempt}")
        assert (failed.status, failed.error, failed.attempts) == (
            JobStatus.DEAD,
            f"boom {RETRY.max_attempts}",
            RETRY.max_attempts,
        )
        dead = await queue.dead_letters()
        assert [(j.id, j.error) for j in dead] == [(job.id, f"boom {RETRY.max_attempts}")]
        nxt = await queue.lease("w1")
        assert nxt is not None and nxt.job.id == after.id

    async def test_fail_without_retry_goes_straight_to_the_dead_letters(
        self, queue: JobQueue
    ) -> None:
        await queue.enqueue("s1", {"input": "1"})
        lease = await queue.lease("w1")
        assert lease is not None
        failed = await queue.fail(lease, "bad input", retry=False)
        assert (failed.status, failed.attempts) == (JobStatus.DEAD, 1)
        assert [j.id for j in await queue.dead_letters()] == [failed.id]

    async def test_release_gives_the_job_back_uncounted(self, queue: JobQueue) -> None:
        await queue.enqueue("s1", {"input": "1"})
        lease = await queue.lease("w1")
        assert lease is not None
        back = await queue.release(lease)
        assert (back.status, back.attempts) == (JobStatus.QUEUED, 0)
        again = await queue.lease("w2")
        assert again is not None and again.job.id == lease.job.id and again.job.attempts == 1

    # --- leases -----------------------------------------------------------------------

    async def test_a_dead_workers_lease_expires_and_another_takes_the_job(
        self, queue: JobQueue, clock: FakeClock
    ) -> None:
        await queue.enqueue("s1", {"input": "1"})
        lost = await queue.lease("w1")
        assert lost is not None
        clock.advance(LEASE - 1)
        assert await queue.lease("w2") is None
        clock.advance(1)
        assert await queue.lease("w2") is None, "an expired job skipped its backoff"
        clock.advance(RETRY.backoff(1))
        taken = await queue.lease("w2")
        assert taken is not None and taken.job.id == lost.job.id
        assert taken.job.attempts == 2 and taken.job.error
        with pytest.raises(LeaseLostError):
            await queue.complete(lost, "late")
        with pytest.raises(LeaseLostError):
            await queue.renew(lost)
        await queue.complete(taken, "ok")
        assert (await queue.get(taken.job.id)).result == "ok"

    async def test_expire_reports_the_jobs_it_reclaimed(
        self, queue: JobQueue, clock: FakeClock
    ) -> None:
        await queue.enqueue("s1", {"input": "1"})
        lease = await queue.lease("w1")
        assert lease is not None
        assert await queue.expire() == []
        clock.advance(LEASE)
        expired = await queue.expire()
        assert [(j.id, j.status, j.attempts) for j in expired] == [
            (lease.job.id, JobStatus.QUEUED, 1)
        ]

    async def test_an_expired_lease_counts_toward_the_dead_letters(
        self, queue: JobQueue, clock: FakeClock
    ) -> None:
        await queue.enqueue("s1", {"input": "poison"})
        for _ in range(RETRY.max_attempts):
            clock.advance(RETRY.wait_max)
            assert await queue.lease("w") is not None
            clock.advance(LEASE)
            await queue.expire()
        assert len(await queue.dead_letters()) == 1

    async def test_renew_keeps_the_lease(self, queue: JobQueue, clock: FakeClock) -> None:
        await queue.enqueue("s1", {"input": "1"})
        lease = await queue.lease("w1")
        assert lease is not None
        for _ in range(3):
            clock.advance(LEASE * 2 / 3)
            lease = await queue.renew(lease)
            assert lease.expires_at == clock.time() + LEASE
        assert await queue.expire() == []
        await queue.complete(lease, "ok")

    # --- waiting ----------------------------------------------------------------------

    async def test_a_waiting_lease_wakes_on_enqueue(self, queue: JobQueue) -> None:
        waiting = asyncio.ensure_future(queue.lease("w1", wait=60.0))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()
        job = await queue.enqueue("s1", {"input": "1"})
        lease = await asyncio.wait_for(waiting, 5.0)
        assert lease is not None and lease.job.id == job.id

    async def test_a_waiting_lease_gives_up_after_its_wait(
        self, queue: JobQueue, clock: FakeClock
    ) -> None:
        waiting = asyncio.ensure_future(queue.lease("w1", wait=5.0))
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(5.0)
        assert await asyncio.wait_for(waiting, 5.0) is None

    # --- the state machine ------------------------------------------------------------

    def test_state_machine(self, make_queue: MakeQueue) -> None:
        machine = type("Machine", (QueueMachine,), {"make_queue": staticmethod(make_queue)})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.state_machine_examples,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
