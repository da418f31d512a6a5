"""A process killed mid-run leaves a session that reopens with everything saved so far."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import spectra_sqlite as sqlite
from spectra_core import AuditEntry, MessageEntry, SessionManager
from spectra_core.engine import RunStatus, SessionEngine
from spectra_core.testing import GatedProvider

pytestmark = pytest.mark.needs_plugins

WORKER = textwrap.dedent("""
    import asyncio, sys
    from spectra_core import SessionManager
    from spectra_core.engine import SessionEngine, EventType
    from spectra_core.logging import configure_logging
    from spectra_core.testing import GatedProvider
    from spectra_sqlite import SQLiteSessionStore

    async def main() -> None:
        configure_logging("warning")
        store = SQLiteSessionStore(sys.argv[1])
        engine = SessionEngine(SessionManager(store), provider=GatedProvider("half an"))
        engine.start()
        stream = await engine.run_streaming("ann", "tell me everything")
        async for event in stream:
            if event.type is EventType.MESSAGE_UPDATE:
                print(event.session_id, flush=True)   # streaming, and never finishing
                await asyncio.Event().wait()

    asyncio.run(main())
""")


async def test_killed_run_session_reopens_and_continues(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        str(db),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        session_id = line.decode().strip()
        assert session_id, "the worker did not start streaming"
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    async with sqlite.SQLiteSessionStore(db) as store:
        manager = SessionManager(store)
        session = await manager.load(session_id)
        kinds = [
            e.event_type if isinstance(e, AuditEntry) else e.message.role  # type: ignore[union-attr]
            for e in session.entries
        ]
        assert kinds == ["run_started", "user"]  # the user message was saved before the model ran
        engine = SessionEngine(manager)
        engine.start()
        result = await engine.run("ann", "are you back?", session_id)
        assert result.status is RunStatus.COMPLETED
        await engine.stop()
        texts = [
            e.message.text
            for e in (await manager.load(session_id)).entries
            if isinstance(e, MessageEntry)
        ]
        assert texts == ["tell me everything", "are you back?", "echo: are you back?"]


async def test_drain_under_load(manager: SessionManager) -> None:
    gated = GatedProvider()
    engine = SessionEngine(manager, provider=gated, max_concurrent_sessions=500)
    engine.start()
    runs = [asyncio.create_task(engine.run(f"u{i}", "hi")) for i in range(300)]
    while gated.calls < 300:
        await asyncio.sleep(0)
    stopping = asyncio.create_task(engine.stop(drain=True))
    await asyncio.sleep(0)
    refused = await asyncio.gather(
        *(engine.run("late", "hi") for _ in range(20)), return_exceptions=True
    )
    assert all(type(r).__name__ == "EngineDrainingError" for r in refused)
    gated.release()
    await stopping
    results = await asyncio.gather(*runs)
    assert {r.status for r in results} == {RunStatus.COMPLETED}
    assert engine.active_session_count == 0


@pytest.mark.parametrize("busy", ["reject", "wait"])
async def test_simultaneous_runs_on_one_session(tmp_path: Path, busy: str) -> None:
    """Admission awaits real I/O here (SQLite), so runs arriving together race for the
    session; exactly one turn runs at a time and no entry is lost."""
    async with sqlite.SQLiteSessionStore(tmp_path / "s.db") as store:
        manager = SessionManager(store)
        engine = SessionEngine(manager, busy=busy)  # type: ignore[arg-type]
        engine.start()
        first = await engine.run("ann", "first")
        results = await asyncio.gather(
            *(engine.run("ann", f"q{i}", first.session_id) for i in range(10)),
            return_exceptions=True,
        )
        ok = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        if busy == "reject":
            assert len(ok) == 1
            assert all(type(r).__name__ == "SessionBusyError" for r in refused)
        else:
            assert len(ok) == 10 and not refused
        session = await manager.load(first.session_id)
        roles = [e.message.role for e in session.entries if isinstance(e, MessageEntry)]
        assert roles == ["user", "assistant"] * (1 + len(ok))  # turns never interleave
        await engine.stop()
