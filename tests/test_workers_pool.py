"""SequentialWorkerPool on the memory queue: order, concurrency, drain, retries, dead
letters, dead workers, and the default agent handler on real stores."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spectra_core import AuditEntry, InvalidArgumentError, MessageEntry, SessionManager
from spectra_core.engine import SessionEngine
from spectra_core.testing import FakeClock
from spectra_core.workers import (
    JOB_FINISHED,
    Job,
    JobFailed,
    JobQueue,
    JobRetry,
    JobStatus,
    SequentialWorkerPool,
    create_agent_runner,
)

pytestmark = pytest.mark.needs_plugins

LEASE = 30.0


def memory_queue(clock: FakeClock, **kw: Any) -> JobQueue:
    from spectra_memory import MemoryJobQueue

    kw.setdefault("retry", JobRetry(max_attempts=3, wait_initial=1.0, wait_max=4.0))
    return MemoryJobQueue(lease_timeout=LEASE, clock=clock, **kw)


async def settle(rounds: int = 30) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def drive(clock: FakeClock, done: Callable[[], Any], step: float = 0.5) -> None:
    """Let the pool run, moving time on in small steps, until ``done()`` (or give up)."""
    for _ in range(2_000):
        await settle()
        ok = done()
        if ok if not inspect.isawaitable(ok) else await ok:
            return
        clock.advance(step)
    raise AssertionError("the pool never got there")


async def finished(queue: JobQueue, ids: list[str]) -> bool:
    jobs = [await queue.get(i) for i in ids]
    return all(j.status.finished for j in jobs)


class Recorder:
    """A handler that records starts and ends, and fails jobs as told."""

    def __init__(self, failures: dict[str, int] | None = None) -> None:
        self.starts: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str]] = []
        self.active: dict[str, int] = {}
        self.peak = 0
        self.failures = dict(failures or {})
        self.gate: asyncio.Event | None = None

    async def __call__(self, job: Job) -> Any:
        assert not self.active.get(job.session_id), "two jobs of one session at once"
        self.active[job.session_id] = 1
        self.peak = max(self.peak, sum(self.active.values()))
        self.starts.append((job.session_id, job.input))
        self.events.append(("start", job.session_id, job.input))
        try:
            await settle(3)
            if self.gate is not None:
                await self.gate.wait()
            if self.failures.get(job.input, 0) > 0:
                self.failures[job.input] -= 1
                raise RuntimeError(f"failing {job.input}")
            return {"echo": job.input}
        finally:
            self.active[job.session_id] = 0
            self.events.append(("end", job.session_id, job.input))


async def test_jobs_of_a_session_run_in_order_and_sessions_concurrently(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, concurrency=2, clock=clock)
    ids = []
    for i in range(4):
        for s in ("a", "b", "c"):
            ids.append(await pool.enqueue(s, f"{s}{i}"))
    handler = Recorder()
    await pool.process(handler)
    await drive(clock, lambda: len(handler.starts) == 12 and not any(handler.active.values()))
    await pool.stop()
    for s in ("a", "b", "c"):
        assert [i for sess, i in handler.starts if sess == s] == [f"{s}{n}" for n in range(4)]
    assert handler.peak == 2
    jobs = [await pool.job(i) for i in ids]
    assert all(j.status is JobStatus.COMPLETED and j.attempts == 1 for j in jobs)
    assert jobs[0].result == {"echo": "a0"}


async def test_failed_jobs_retry_then_go_to_the_dead_letters(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, concurrency=3, clock=clock)
    flaky = await pool.enqueue("s", "flaky")
    poison = await pool.enqueue("s", "poison")
    after = await pool.enqueue("s", "after")
    handler = Recorder({"flaky": 2, "poison": 99})
    await pool.process(handler)
    await drive(clock, lambda: ("s", "after") in handler.starts and not handler.active["s"])
    await pool.stop()
    assert [i for _, i in handler.starts] == ["flaky"] * 3 + ["poison"] * 3 + ["after"]
    assert (await pool.job(flaky)).status is JobStatus.COMPLETED
    dead = await pool.job(poison)
    assert (dead.status, dead.attempts) == (JobStatus.DEAD, 3)
    assert dead.error == "RuntimeError: failing poison"
    assert [j.id for j in await queue.dead_letters()] == [poison]
    assert (await pool.job(after)).status is JobStatus.COMPLETED


async def test_job_failed_without_retry_is_dead_at_once(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job_id = await pool.enqueue("s", "x")

    async def refuse(job: Job) -> None:
        raise JobFailed("cannot ever work", retry=False)

    await pool.process(refuse)
    await drive(clock, lambda: finished(queue, [job_id]))
    await pool.stop()
    job = await pool.job(job_id)
    assert (job.status, job.attempts, job.error) == (JobStatus.DEAD, 1, "cannot ever work")


async def test_a_result_that_is_not_json_fails_the_job(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job_id = await pool.enqueue("s", "x")

    async def bad(job: Job) -> Any:
        return object()

    await pool.process(bad)
    await drive(clock, lambda: finished(queue, [job_id]))
    await pool.stop()
    job = await pool.job(job_id)
    assert job.status is JobStatus.DEAD and "JSON" in (job.error or "")


async def test_stop_with_drain_lets_running_jobs_finish(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, concurrency=2, clock=clock)
    running = await pool.enqueue("a", "a0")
    waiting = await pool.enqueue("a", "a1")
    handler = Recorder()
    handler.gate = asyncio.Event()
    await pool.process(handler)
    await settle()
    assert handler.starts == [("a", "a0")]
    stopping = asyncio.ensure_future(pool.stop(drain=True))
    await settle()
    assert not stopping.done(), "stop(drain=True) returned while a job was running"
    handler.gate.set()
    await asyncio.wait_for(stopping, 5)
    assert (await pool.job(running)).status is JobStatus.COMPLETED
    assert (await pool.job(waiting)).status is JobStatus.QUEUED  # for the next pool
    assert handler.starts == [("a", "a0")]


async def test_stop_without_drain_gives_running_jobs_back(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job_id = await pool.enqueue("a", "a0")
    handler = Recorder()
    handler.gate = asyncio.Event()
    await pool.process(handler)
    await settle()
    await asyncio.wait_for(pool.stop(drain=False), 5)
    job = await pool.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
    second = SequentialWorkerPool(manager, queue=queue, clock=clock)
    handler.gate = None
    await second.process(handler)
    await drive(clock, lambda: len(handler.starts) == 2 and not handler.active["a"])
    await second.stop()
    assert (await second.job(job_id)).status is JobStatus.COMPLETED


async def test_a_job_of_a_dead_worker_is_picked_up_after_its_lease(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job_id = await pool.enqueue("a", "a0")
    ghost = await queue.lease("dead-worker")  # leased, then the worker died
    assert ghost is not None
    handler = Recorder()
    await pool.process(handler)
    await settle()
    assert handler.starts == []
    await drive(clock, lambda: bool(handler.starts) and not handler.active["a"])
    await pool.stop()
    job = await pool.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 2)
    assert "dead-worker" in (job.error or "")


async def test_a_long_job_keeps_its_lease(manager: SessionManager, clock: FakeClock) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job_id = await pool.enqueue("a", "a0")
    handler = Recorder()
    handler.gate = asyncio.Event()
    await pool.process(handler)
    for _ in range(20):  # ten lease timeouts
        await settle()
        clock.advance(LEASE / 2)
    await settle()
    assert await queue.expire() == []
    handler.gate.set()
    await drive(clock, lambda: not handler.active["a"])
    await pool.stop()
    assert (await pool.job(job_id)).attempts == 1
    assert handler.starts == [("a", "a0")]


async def test_enqueue_validates_before_queueing(manager: SessionManager, clock: FakeClock) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    for session_id, text, options in [
        ("../x", "hi", None),
        ("s", "", None),
        ("s", "   ", None),
        ("s", "hi", {"max_turns": 0}),
        ("s", "hi", {"no_such_option": 1}),
        ("s", "hi", {"tools": []}),
        ("s", "hi", {"metadata": {"x": object()}}),
    ]:
        with pytest.raises(InvalidArgumentError):
            await pool.enqueue(session_id, text, options=options)
    assert await queue.lease("w") is None


async def test_enqueue_is_idempotent_by_key(manager: SessionManager, clock: FakeClock) -> None:
    pool = SequentialWorkerPool(manager, queue=memory_queue(clock), clock=clock)
    first = await pool.enqueue("s", "hi", key="req-1")
    assert await pool.enqueue("s", "hi", key="req-1") == first


def test_bad_pool_arguments(manager: SessionManager, clock: FakeClock) -> None:
    for kw in ({"concurrency": 0}, {"concurrency": 1.5}, {"idle_wait": 0}):
        with pytest.raises(InvalidArgumentError):
            SequentialWorkerPool(manager, queue=memory_queue(clock), **kw)


async def test_process_twice_is_refused(manager: SessionManager, clock: FakeClock) -> None:
    pool = SequentialWorkerPool(manager, queue=memory_queue(clock), clock=clock)
    await pool.process(Recorder())
    with pytest.raises(InvalidArgumentError, match="already"):
        await pool.process(Recorder())
    await pool.stop()
    with pytest.raises(InvalidArgumentError, match="stopped"):
        await pool.process(Recorder())


# --- the default handler: a turn through the engine, on real stores -------------------


@pytest.fixture(params=["memory", "sqlite"])
async def store_manager(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Any:
    if request.param == "memory":
        from spectra_memory import InMemorySessionStore

        yield SessionManager(InMemorySessionStore(), clock=clock)
        return
    from spectra_sqlite import SQLiteSessionStore

    async with SQLiteSessionStore(tmp_path / "s.db") as store:
        yield SessionManager(store, clock=clock)


async def test_default_handler_runs_turns_through_the_engine(
    store_manager: SessionManager, clock: FakeClock
) -> None:
    manager = store_manager
    session = await manager.create({"system_prompt": "Be brief."}, user_id="u1")
    # drive() moves the fake clock on while sqlite works in real time: no run timeout here
    engine = SessionEngine(manager, clock=clock, session_timeout_ms=10**9)
    engine.start()
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, concurrency=2, engine=engine, clock=clock)
    ids = [await pool.enqueue(session.id, text) for text in ("first", "second", "third")]
    await pool.process()
    await drive(clock, lambda: finished(queue, ids))
    await pool.stop()
    jobs = [await pool.job(i) for i in ids]
    assert [j.result["text"] for j in jobs] == ["echo: first", "echo: second", "echo: third"]
    assert all(j.result["status"] == "completed" for j in jobs)
    loaded = await manager.load(session.id)
    users = [
        e.message.text
        for e in loaded.entries
        if isinstance(e, MessageEntry) and e.message.role == "user"
    ]
    assert users == ["first", "second", "third"]
    audits = [e for e in loaded.entries if isinstance(e, AuditEntry)]
    assert [a.details["job_id"] for a in audits if a.event_type == JOB_FINISHED] == ids
    await engine.stop()


async def test_a_retried_job_whose_turn_completed_is_not_run_again(
    manager: SessionManager, clock: FakeClock
) -> None:
    session = await manager.create(user_id="u1")
    engine = SessionEngine(manager, clock=clock)
    engine.start()
    queue = memory_queue(clock)
    await queue.enqueue(session.id, {"input": "once", "options": {}})
    lease = await queue.lease("w1")
    assert lease is not None
    runner = create_agent_runner(manager, session, engine=engine)
    first = await runner(lease.job)  # the worker dies before queue.complete()
    again = await runner(lease.job)  # the job's next attempt
    assert again == first
    loaded = await manager.load(session.id)
    assert sum(isinstance(e, MessageEntry) for e in loaded.entries) == 2
    await engine.stop()


async def test_a_failed_run_fails_the_job(manager: SessionManager, clock: FakeClock) -> None:
    from spectra_core.agent import ProviderError
    from spectra_core.agent.builtin import ScriptedProvider

    session = await manager.create(user_id="u1")
    provider = ScriptedProvider([ProviderError("bad request", provider="scripted")])
    engine = SessionEngine(manager, clock=clock, provider=provider)
    engine.start()
    queue = memory_queue(clock, retry=JobRetry(max_attempts=1))
    pool = SequentialWorkerPool(manager, queue=queue, engine=engine, clock=clock)
    job_id = await pool.enqueue(session.id, "hi", options={"model": "scripted-1"})
    await pool.process()
    await drive(clock, lambda: finished(queue, [job_id]))
    await pool.stop()
    job = await pool.job(job_id)
    assert job.status is JobStatus.DEAD
    assert job.error is not None and "run failed" in job.error and "bad request" in job.error
    await engine.stop()


async def test_a_job_for_a_missing_session_is_dead_at_once(
    manager: SessionManager, clock: FakeClock
) -> None:
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job_id = await pool.enqueue("no-such-session", "hi")
    await pool.process()
    await drive(clock, lambda: finished(queue, [job_id]))
    await pool.stop()
    job = await pool.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert "no-such-session" in (job.error or "")


async def test_workers_survive_a_queue_that_fails_for_a_while(
    manager: SessionManager, clock: FakeClock
) -> None:
    from spectra_memory import MemoryJobQueue

    class Flaky(MemoryJobQueue):
        """A queue whose service is down for the first leases and the first complete."""

        def __init__(self) -> None:
            super().__init__(lease_timeout=LEASE, clock=clock)
            self.lease_errors = 3
            self.complete_errors = 1

        async def lease(self, worker_id: str, *, wait: float = 0.0) -> Any:
            if self.lease_errors:
                self.lease_errors -= 1
                raise ConnectionError("queue unreachable")
            return await super().lease(worker_id, wait=wait)

        async def complete(self, lease: Any, result: Any = None) -> Job:
            if self.complete_errors:
                self.complete_errors -= 1
                raise ConnectionError("queue unreachable")
            return await super().complete(lease, result)

    queue = Flaky()
    pool = SequentialWorkerPool(manager, queue=queue, concurrency=2, clock=clock)
    job_id = await pool.enqueue("s", "x")
    handler = Recorder()
    await pool.process(handler)
    await drive(clock, lambda: finished(queue, [job_id]))
    await pool.stop()
    job = await pool.job(job_id)
    # the first outcome was lost with the connection: the lease ran out, the job ran again
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 2)
    assert handler.starts == [("s", "x"), ("s", "x")]


async def test_a_job_with_bad_options_in_the_queue_is_dead_at_once(
    manager: SessionManager, clock: FakeClock
) -> None:
    session = await manager.create(user_id="u1")
    queue = memory_queue(clock)
    pool = SequentialWorkerPool(manager, queue=queue, clock=clock)
    job = await queue.enqueue(session.id, {"input": "hi", "options": {"max_turns": 0}})
    await pool.process()
    await drive(clock, lambda: finished(queue, [job.id]))
    await pool.stop()
    dead = await pool.job(job.id)
    assert (dead.status, dead.attempts) == (JobStatus.DEAD, 1)
    assert "max_turns" in (dead.error or "")
