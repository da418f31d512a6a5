"""A process forked from one that used the store opens its own connection."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from spectra_core import SessionManager
from spectra_sqlite import SQLiteSessionStore


def test_a_forked_child_saves_with_the_store_of_its_parent(tmp_path: Path) -> None:
    # The parent's aiosqlite thread does not exist in the child: without the fork
    # handler the child's first statement would wait for it forever.
    store = SQLiteSessionStore(tmp_path / "sessions.db")
    manager = SessionManager(store)

    async def first() -> str:
        session = await manager.create()
        manager.append_message(session, "from the parent")
        await manager.save(session)
        return session.id

    session_id = asyncio.run(first())

    async def in_child() -> None:
        session = await manager.load(session_id)
        manager.append_message(session, "from the child")
        await manager.save(session)
        await store.aclose()

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            asyncio.run(asyncio.wait_for(in_child(), timeout=20))
            code = 0
        finally:
            os._exit(code)
    for _ in range(300):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)  # waiting for a real child process, not for the clock
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("the forked child's save hung")
    assert os.waitstatus_to_exitcode(status) == 0

    async def check() -> list[str]:
        loaded = await manager.load(session_id)
        await store.aclose()
        return [str(e.message.text) for e in loaded.entries]  # type: ignore[attr-defined]

    assert asyncio.run(check()) == ["from the parent", "from the child"]
