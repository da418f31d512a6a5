"""The engine writing its runs to the redis event log, read on another replica."""

from __future__ import annotations

import asyncio

from spectra_core import SessionManager
from spectra_core.engine import RunStatus, SessionEngine
from spectra_core.testing import FakeClock, GatedProvider
from spectra_core.testing.event_log_conformance import WAIT, next_entry
from spectra_redis import RedisEventLog, RedisSessionStore


async def test_a_run_on_one_engine_is_followed_from_another_replica(
    redis_url: str, prefix: str
) -> None:
    clock = FakeClock()
    store = RedisSessionStore(redis_url, key_prefix=prefix)
    log = RedisEventLog(redis_url, key_prefix=prefix, clock=clock)
    gated = GatedProvider()
    engine = SessionEngine(
        SessionManager(store, clock=clock), clock=clock, provider=gated, event_log=log
    )
    engine.start()
    handle = await engine.start_run("u", "hi")
    async with asyncio.timeout(WAIT):
        while gated.calls < 1:  # the run is streaming its first answer
            await asyncio.sleep(0)
    replica = RedisEventLog(redis_url, key_prefix=prefix, socket_timeout=4.0, clock=clock)
    reader = await replica.subscribe(handle.run_id)
    early = [await next_entry(reader) for _ in range(2)]
    gated.release()

    async def rest() -> list[str]:
        return [e.id async for e in reader]

    later = await asyncio.wait_for(rest(), WAIT)
    result = await asyncio.wait_for(engine.wait_run(handle.run_id), WAIT)
    assert result.status is RunStatus.COMPLETED
    everything = [e async for e in await engine.subscribe(handle.run_id)]
    assert [e.id for e in early] + later == [e.id for e in everything]
    assert everything[-1].type == "run_end" and everything[-1].event["status"] == "completed"
    resumed = [e.id async for e in await replica.subscribe(handle.run_id, after=early[1].id)]
    assert resumed == later
    await engine.stop()
    await replica.aclose()
    await log.aclose()
    await store.aclose()
