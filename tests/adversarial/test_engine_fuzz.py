"""The engine's promises under arbitrary input, options, providers, tools and readers.

Hypothesis draws what a careless or hostile caller, model server or tool could do: text
with lone surrogates, images valid or not, options of any type, providers that raise
anything (``BaseException`` subclasses included), stream garbage or hang, tools that
fail, hang, nest or spam, readers that leave or abort. Whatever is drawn:

* admission either refuses with a :class:`SpectraError` or admits the run;
* an admitted run ends (hangs are ended by the run's timeout on a fake clock) with
  exactly one terminal ``run_end``, its ``seq`` numbers contiguous;
* it frees its slot and its session (the next run on the session is admitted);
* ``stop(drain=True)`` returns, and every saved session still loads (from a reopened
  store for SQLite).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import stamina
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spectra_core import SessionManager, SessionStore, SpectraError
from spectra_core.engine import RunEvent, SessionEngine
from spectra_core.testing import FakeClock

from . import _chaos as chaos
from ._chaos import (
    Boom,
    ChaosProvider,
    FaultyStore,
    inputs,
    options,
    readers,
    scripts,
    store_faults,
)

pytestmark = pytest.mark.needs_plugins

#: Seconds the fake clock moves when the run is stuck: past every timeout drawn here.
STEP = 120.0
ROUNDS = 12


# --- one example -------------------------------------------------------------------------


async def until_done(aw: asyncio.Future[Any] | asyncio.Task[Any], clock: FakeClock) -> Any:
    """Await ``aw``; whenever something hangs, move the fake clock past every timeout."""
    for _ in range(ROUNDS):
        while not aw.done() and not chaos.STAGE.hung:
            chaos.STAGE.changed.clear()
            change = asyncio.ensure_future(chaos.STAGE.changed.wait())
            await asyncio.wait({aw, change}, return_when=asyncio.FIRST_COMPLETED)
            change.cancel()
        if aw.done():
            return aw.result()
        clock.advance(STEP)
        chaos.STAGE.changed.clear()
        change = asyncio.ensure_future(chaos.STAGE.changed.wait())
        await asyncio.wait({aw, change}, return_when=asyncio.FIRST_COMPLETED)
        change.cancel()
    raise AssertionError(f"still not done after {ROUNDS} timeouts")


async def read(
    engine: SessionEngine, stream: AsyncIterator[RunEvent], reader: tuple[str, int]
) -> list[RunEvent]:
    kind, after = reader
    events: list[RunEvent] = []
    async for item in stream:
        events.append(item)
        if kind != "all" and len(events) > after and not item.terminal:
            if kind == "leave":
                await stream.aclose()  # type: ignore[attr-defined]
                return events
            if kind == "abort":
                engine.abort_session(item.session_id)
            else:
                chaos.STAGE.stops.append(asyncio.ensure_future(engine.stop(drain=False)))
            kind = "all"
    return events


async def example(
    store: SessionStore,
    user_input: Any,
    run_options: Any,
    script: list[list[tuple[str, Any]]],
    reader: tuple[str, int],
    max_queued_events: int,
    store_fault: tuple[int, int] | None = None,
) -> list[str]:
    """Run one drawn run; check the promises; return the ids of the saved sessions."""
    stage = chaos.fresh_stage()
    clock = FakeClock()
    manager = SessionManager(store, clock=clock)
    engine = SessionEngine(
        manager,
        clock=clock,
        provider=ChaosProvider(script),
        providers={"chaos": ChaosProvider(script)},
        session_timeout_ms=10_000,
        max_queued_events=max_queued_events,
    )
    engine.start()
    first = await manager.create(user_id="fuzz")
    if store_fault is not None and isinstance(store, FaultyStore):
        nth, which = store_fault
        store.fault = (nth, chaos.STORE_ERRORS[which]())
    try:
        stream = await engine.run_streaming("fuzz", user_input, first.id, run_options)
    except SpectraError as exc:
        event(f"refused: {str(exc)[:30]}")
        stream = None
    except (Exception, Boom):  # the store failed during admission: it says so
        if store_fault is None:
            raise
        event("admission: store failed")
        stream = None
    if stream is not None:
        reading = asyncio.ensure_future(read(engine, stream, reader))
        events = await until_done(reading, clock)
        event(f"ended: {events[-1].status}" if events[-1].terminal else "reader left")
        if reader[0] != "leave":
            assert sum(e.terminal for e in events) == 1 and events[-1].terminal, events[-5:]
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert all(e.run_id == events[0].run_id for e in events)
    if isinstance(store, FaultyStore):
        store.fault = None  # what follows checks the engine, not the fault
    if engine.lifecycle.value == "running" and reader[0] != "leave":
        assert engine.active_session_count == 0
        again = await until_done(
            asyncio.ensure_future(engine.run("fuzz", "again", first.id)), clock
        )
        assert again.session_id == first.id
    for stopping in stage.stops:
        await until_done(stopping, clock)
    await until_done(asyncio.ensure_future(engine.stop(drain=True)), clock)
    assert engine.active_session_count == 0
    ids = [info.id for info in (await manager.list()).sessions]
    for session_id in ids:
        await manager.load(session_id)
    return ids


def run_example(make_store: Callable[[], SessionStore], durable: bool, *args: Any) -> None:
    """One example in a fresh event loop; a durable store is read back after a reopen."""

    async def main() -> None:
        async with asyncio.timeout(5):  # a broken promise fails, it does not hang
            store = make_store()
            try:
                ids = await example(store, *args)
            finally:
                await store.aclose()
            if durable:  # every saved session loads through a fresh connection too
                async with make_store() as fresh:
                    manager = SessionManager(fresh)
                    for session_id in ids:
                        await manager.load(session_id)

    with stamina.set_testing(True, attempts=2):
        asyncio.run(main())


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(inputs, options, scripts, readers, st.sampled_from([2, 8, 1024]), store_faults)
def test_engine_promises_hold_in_memory(
    user_input: Any,
    run_options: Any,
    script: list[list[tuple[str, Any]]],
    reader: tuple[str, int],
    queue: int,
    store_fault: tuple[int, int] | None,
) -> None:
    run_example(FaultyStore, False, user_input, run_options, script, reader, queue, store_fault)


@settings(FUZZ, max_examples=40)
@given(inputs, options, scripts, readers, st.sampled_from([2, 1024]))
def test_engine_promises_hold_on_sqlite(
    user_input: Any,
    run_options: Any,
    script: list[list[tuple[str, Any]]],
    reader: tuple[str, int],
    queue: int,
) -> None:
    from spectra_sqlite import SQLiteSessionStore

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fuzz.db"
        run_example(
            lambda: SQLiteSessionStore(db), True, user_input, run_options, script, reader, queue
        )
