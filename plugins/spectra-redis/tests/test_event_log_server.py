"""The redis event log against a redis-server of the test's own: how many connections
idle readers hold, and what readers and writers see when the server is killed."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from _server import RedisServer

from spectra_core import StoreError
from spectra_core.event_log import RunLogNotFound
from spectra_core.testing.event_log_conformance import WAIT, drain, make_event, new_run_id
from spectra_redis import RedisEventLog


async def _connections(url: str) -> tuple[int, int]:
    """(client connections but this one, clients blocked) on the server."""
    probe = aioredis.Redis.from_url(url)
    try:
        clients = await probe.client_list()
        info = await probe.info("clients")
        return len(clients) - 1, int(info["blocked_clients"])
    finally:
        await probe.aclose()


async def _until_blocked(url: str, blocked: int) -> tuple[int, int]:
    async with asyncio.timeout(WAIT):
        while (seen := await _connections(url))[1] != blocked:
            pass
    return seen


async def test_a_hundred_idle_readers_hold_one_blocked_connection(server: RedisServer) -> None:
    """100 readers of 100 runs and 100 readers of one run, all waiting: the process holds
    the connection of its one XREAD loop and the pool's few that its calls used (the
    subscribes, and CLIENT UNBLOCK as runs were added), none per reader."""
    log = RedisEventLog(server.url)
    many = [new_run_id() for _ in range(100)]
    shared = new_run_id()
    for run in [*many, shared]:
        await log.open(run)
    readers = [asyncio.ensure_future(drain(await log.subscribe(run))) for run in many]
    readers += [asyncio.ensure_future(drain(await log.subscribe(shared))) for _ in range(100)]
    connections, blocked = await _until_blocked(server.url, 1)
    print(f"\n200 idle readers (101 runs): {connections} connections, {blocked} blocked")
    assert connections <= 3 and blocked == 1
    other = RedisEventLog(server.url, socket_timeout=4.0)  # a replica (a pool of its own)
    for run in many:
        await other.append(make_event(run, 1, "run_end"))
    for seq in range(1, 11):
        await other.append(make_event(shared, seq, "run_end" if seq == 10 else "x"))
    results = await asyncio.gather(*readers)
    assert results == [[1]] * 100 + [list(range(1, 11))] * 100
    await _until_blocked(server.url, 0)  # nobody waits: the XREAD loop has stopped
    await log.aclose()
    await other.aclose()


async def test_a_killed_server_is_a_clear_error_for_readers_and_writers(
    server: RedisServer,
) -> None:
    log = RedisEventLog(server.url, socket_timeout=0.5, block_timeout=0.2)
    run = new_run_id()
    for seq in range(1, 4):
        await log.append(make_event(run, seq))
    reader = await log.subscribe(run)
    assert [(await anext(reader)).seq for _ in range(3)] == [1, 2, 3]
    waiting = asyncio.ensure_future(anext(reader))
    await _until_blocked(server.url, 1)
    server.kill()
    with pytest.raises(StoreError) as info:
        await asyncio.wait_for(waiting, WAIT)  # an error, not a hang
    errors = [str(info.value)]
    for attempt in (log.append(make_event(run, 4)), log.subscribe(run), log.ping()):
        with pytest.raises(StoreError) as info:
            await attempt
        errors.append(str(info.value))
    for message in errors:
        assert f"redis://:***@127.0.0.1:{server.port}/0" in message, message
        assert "s3cret" not in message
    assert "XREAD" in errors[0] and "appending event" in errors[1]
    server.start()  # back, empty: the run is gone, new runs work
    with pytest.raises(RunLogNotFound):
        await log.subscribe(run)
    fresh = new_run_id()
    await log.open(fresh)
    reader = await log.subscribe(fresh)
    pending = asyncio.ensure_future(drain(reader))
    await log.append(make_event(fresh, 1, "run_end"))
    assert await pending == [1]
    await log.aclose()


async def test_a_server_killed_while_reading_a_backlog_is_a_clear_error(
    server: RedisServer,
) -> None:
    log = RedisEventLog(server.url, socket_timeout=0.5, block_timeout=0.2)
    run = new_run_id()
    for seq in range(1, 601):  # more than one catch-up batch
        await log.append(make_event(run, seq))
    reader = await log.subscribe(run)
    assert (await anext(reader)).seq == 1
    server.kill()
    with pytest.raises(StoreError, match=f"127.0.0.1:{server.port}"):
        await asyncio.wait_for(drain(reader), WAIT)
    await log.aclose()
