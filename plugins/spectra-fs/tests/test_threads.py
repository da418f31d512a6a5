"""SessionThreads: a session's work always on one thread, other sessions in parallel."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path

from spectra_core import SessionManager
from spectra_fs import FileSystemSessionStore
from spectra_fs._workers import SessionThreads

_request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="")


def _keys_on_different_threads(count: int) -> tuple[str, str]:
    keys = [f"s{i}" for i in range(50)]
    first = keys[0]
    other = next(k for k in keys if hash(k) % count != hash(first) % count)
    return first, other


async def test_a_key_always_runs_on_the_same_thread() -> None:
    threads = SessionThreads(count=4)
    try:
        seen = {await threads.run("s1", threading.get_ident) for _ in range(20)}
        assert len(seen) == 1
        assert seen != {threading.get_ident()}  # not the loop's thread
    finally:
        threads.shutdown()


async def test_other_keys_run_in_parallel() -> None:
    threads = SessionThreads(count=4)
    a, b = _keys_on_different_threads(4)
    both = threading.Barrier(2, timeout=10)  # raises BrokenBarrierError if serialized
    try:
        await asyncio.gather(threads.run(a, both.wait), threads.run(b, both.wait))
    finally:
        threads.shutdown()


async def test_the_callers_context_reaches_the_thread() -> None:
    threads = SessionThreads()
    _request.set("req-7")
    try:
        assert await threads.run("s1", _request.get) == "req-7"
    finally:
        threads.shutdown()


async def test_work_after_shutdown_starts_new_threads() -> None:
    threads = SessionThreads(count=2)
    before = await threads.run("s1", threading.get_ident)
    threads.shutdown()
    after = await threads.run("s1", threading.get_ident)
    threads.shutdown()
    assert isinstance(before, int) and isinstance(after, int)


async def test_a_store_saves_a_session_on_one_thread(tmp_path: Path) -> None:
    seen: list[threading.Thread] = []  # the objects, kept alive: never mistaken

    class Recording(FileSystemSessionStore):
        def _save_sync(self, path: Path, session):  # type: ignore[no-untyped-def]
            seen.append(threading.current_thread())
            return super()._save_sync(path, session)

    async with Recording(tmp_path / "sessions") as store:
        manager = SessionManager(store)
        session = await manager.create()
        for i in range(10):
            manager.append_message(session, f"message {i}")
            await manager.save(session)
        assert len((await manager.load(session.id)).entries) == 10
        await store.aclose()
        manager.append_message(session, "after close")  # the store reopens its threads
        await manager.save(session)
    before, after = seen[:-1], seen[-1]
    assert len(before) == 11 and all(t is before[0] for t in before)  # create + 10 saves
    assert before[0] is not threading.main_thread()
    assert after is not before[0]  # the close let the thread go; a new one saved
