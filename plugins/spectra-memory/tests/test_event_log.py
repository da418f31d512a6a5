"""The memory event log passes the conformance suite and the reference-model test."""

from __future__ import annotations

import asyncio

import pytest

from spectra_core.event_log import EventLog, EventLogGap, RunLogNotFound
from spectra_core.plugins import BackendKind, load_plugins, module_source
from spectra_core.testing import EventLogConformance, FakeClock, run_event_log_model
from spectra_core.testing.event_log_conformance import MakeEventLog, make_event
from spectra_memory import MemoryEventLog, MemoryEventLogOptions
from spectra_memory import _plugin as memory_plugin


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_log(clock: FakeClock) -> MakeEventLog:
    def make(max_events: int = 10_000, retention: float = 300.0) -> MemoryEventLog:
        return MemoryEventLog(max_events, retention, clock=clock)

    return make


class TestMemoryEventLog(EventLogConformance):
    pass


def test_matches_the_reference_model(make_log: MakeEventLog, clock: FakeClock) -> None:
    run_event_log_model(make_log, clock)


def test_registered_as_event_log_memory() -> None:
    registry = load_plugins([module_source(memory_plugin, "spectra-memory")])
    log = registry.create(BackendKind.EVENT_LOG, "memory", MemoryEventLogOptions(7, 1.0))
    assert isinstance(log, EventLog)
    assert isinstance(log, MemoryEventLog)
    assert (log.max_events, log.retention) == (7, 1.0)


@pytest.mark.parametrize(("max_events", "retention"), [(0, 1.0), (5, -1.0)])
def test_bad_options_are_refused(max_events: int, retention: float) -> None:
    with pytest.raises(ValueError, match=r"max_events|retention"):
        MemoryEventLog(max_events, retention)


async def test_memory_stays_bounded_by_max_events() -> None:
    log = MemoryEventLog(max_events=10)
    for seq in range(1, 1001):
        await log.append(make_event("r1", seq))
    run = log._runs["r1"]
    assert len(run.entries) < 20
    assert [e.seq async for e in _take(await log.subscribe("r1"), 10)] == list(range(991, 1001))
    with pytest.raises(EventLogGap):
        await log.subscribe("r1", after="r1:989")


async def test_expired_runs_are_dropped(clock: FakeClock) -> None:
    log = MemoryEventLog(retention=5.0, clock=clock)
    for i in range(100):
        await log.append(make_event(f"r{i}", 1, "run_end"))
    assert log.run_count == 100
    clock.advance(5.0)
    await log.open("fresh")
    assert log.run_count == 1


async def test_closed_log_refuses_work() -> None:
    log = MemoryEventLog()
    await log.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await log.append(make_event("r1", 1))
    with pytest.raises(RuntimeError, match="closed"):
        await log.ping()


async def _take(it, n):  # type: ignore[no-untyped-def]
    for _ in range(n):
        yield await asyncio.wait_for(anext(it), 5)


async def test_retention_ends_exactly_at_its_deadline(clock: FakeClock) -> None:
    log = MemoryEventLog(retention=5.0, clock=clock)
    await log.append(make_event("r1", 1, "run_end"))
    clock.advance(4.999)
    await log.subscribe("r1")
    clock.advance(0.001)
    with pytest.raises(RunLogNotFound):
        await log.subscribe("r1")
