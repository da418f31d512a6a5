"""The redis event log beyond the conformance suite: configuration, key layout and
expiry, atomic appends from two writers, live reading through the one XREAD loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from spectra_core import BackendKind, ConfigError
from spectra_core.config import parse_config
from spectra_core.errors import InvalidArgumentError
from spectra_core.event_log import EventLogGap, LogEntry, build_event_log, follow_session
from spectra_core.plugins import load_plugins
from spectra_core.testing.event_log_conformance import WAIT, drain, make_event, new_run_id
from spectra_redis import RedisEventLog
from spectra_redis._event_log import EXPIRY_GRACE


async def test_built_from_an_event_log_section(redis_url: str, prefix: str) -> None:
    registry = load_plugins()
    assert registry.get(BackendKind.EVENT_LOG, "redis").distribution == "spectra-redis"
    config = parse_config(
        {"event_log": {"backend": "redis", "url": redis_url, "key_prefix": prefix,
                       "max_events": 50, "retention": "2m", "block_timeout": "250ms",
                       "abandon_after": "1h"}},
        "spectra.toml",
        registry,
    )  # fmt: skip
    log = build_event_log(config, registry)
    assert isinstance(log, RedisEventLog)
    assert (log.max_events, log.retention, log.block_timeout, log.abandon_after) == (
        50,
        120.0,
        0.25,
        3600.0,
    )
    assert log.key_prefix == prefix
    run = new_run_id()
    await log.append(make_event(run, 1, "run_end"))
    assert await drain(await log.subscribe(run)) == [1]
    await log.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"block_timeout": "5s"}, r"\$.event_log: block_timeout must be .* below socket_timeout"),
        ({"max_events": 0}, r"\$.event_log.max_events: max_events must be at least 1"),
        ({"retention": "soon"}, r"\$.event_log.retention: expected a duration"),
        ({"blok_timeout": "1s"}, "did you mean 'block_timeout'"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"event_log": {"backend": "redis", **options}}, "spectra.toml", load_plugins())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="block_timeout"):
        RedisEventLog("redis://h/0", block_timeout=5, socket_timeout=5)
    with pytest.raises(InvalidArgumentError, match="abandon_after"):
        RedisEventLog("redis://h/0", abandon_after=-1)
    with pytest.raises(InvalidArgumentError, match="key_prefix"):
        RedisEventLog("redis://h/0", key_prefix="")
    with pytest.raises(ValueError, match="max_events"):
        RedisEventLog("redis://h/0", max_events=0)
    with pytest.raises(InvalidArgumentError, match="redis://"):
        RedisEventLog("http://h")


async def test_layout_ids_and_expiry(redis_url: str, prefix: str) -> None:
    log = RedisEventLog(redis_url, key_prefix=prefix, retention=30, abandon_after=600)
    client = log.client()
    run = new_run_id()
    stream, meta = log.keys(run)
    assert (stream, meta) == (f"{prefix}:evlog:{{{run}}}:s", f"{prefix}:evlog:{{{run}}}:m")
    await log.open(run)
    assert 0 < await client.pttl(meta) <= 600_000
    for seq in range(1, 4):
        await log.append(make_event(run, seq))
    ids = [i for i, _ in await client.xrange(stream)]
    assert ids == [b"1-0", b"2-0", b"3-0"]  # the stream id is the seq: resume = XRANGE (n-0
    assert 590_000 < await client.pttl(stream) <= 600_000  # a run that is abandoned goes
    await log.append(make_event(run, 4, "run_end"))
    for key in (stream, meta):
        ttl = await client.pttl(key)
        assert 30_000 < ttl <= (30 + EXPIRY_GRACE) * 1000
    await log.aclose()


async def test_without_abandon_after_a_live_run_never_expires(redis_url: str, prefix: str) -> None:
    log = RedisEventLog(redis_url, key_prefix=prefix, abandon_after=0)
    run = new_run_id()
    await log.open(run)
    await log.append(make_event(run, 1))
    assert [await log.client().pttl(k) for k in log.keys(run)] == [-1, -1]
    await log.aclose()


async def test_redis_keeps_about_max_events(redis_url: str, prefix: str) -> None:
    log = RedisEventLog(redis_url, key_prefix=prefix, max_events=10)
    run = new_run_id()
    for seq in range(1, 1001):
        await log.append(make_event(run, seq))
    # MAXLEN ~ drops whole stream nodes (100 entries by default): at least 10 are kept
    assert 10 <= await log.client().xlen(log.keys(run)[0]) <= 10 + 100
    late = await log.subscribe(run)  # its first kept event is dropped by the next append
    await log.append(make_event(run, 1001, "run_end"))
    with pytest.raises(EventLogGap, match="after seq 990"):
        await anext(late)
    assert await drain(await log.subscribe(run)) == list(range(992, 1002))
    await log.aclose()


async def test_two_writers_racing_on_one_run_never_fork_it(redis_url: str, prefix: str) -> None:
    """Each seq is taken by exactly one writer: the check and the XADD are one step."""
    own = aioredis.Redis.from_url(redis_url)  # a second pool: truly concurrent calls
    a = RedisEventLog(redis_url, key_prefix=prefix)
    b = RedisEventLog(own, key_prefix=prefix)
    run = new_run_id()
    won: list[str] = []

    async def writer(log: RedisEventLog, name: str) -> None:
        seq = 1
        while seq <= 100:
            with contextlib.suppress(InvalidArgumentError):  # the other took this seq
                await log.append(make_event(run, seq, "x", writer=name))
                won.append(name)
            seq += 1

    await asyncio.gather(writer(a, "a"), writer(b, "b"))
    assert len(won) == 100
    await a.append(make_event(run, 101, "run_end"))
    with pytest.raises(InvalidArgumentError, match="has ended"):
        await b.append(make_event(run, 102))
    entries = [e async for e in await a.subscribe(run)]
    assert [e.seq for e in entries] == list(range(1, 102))
    assert [e.event.get("writer") for e in entries[:-1]] == won
    await a.aclose()
    await b.aclose()
    await own.ping()  # a client given is left open
    await own.aclose()


async def test_another_replica_reads_live_events(redis_url: str, prefix: str) -> None:
    """A reader on another log (replica) gets events through its XREAD loop, also for a
    run it starts watching while that loop is blocked on others: the loop is interrupted
    (CLIENT UNBLOCK) rather than left to its 30 s block timeout."""
    writer = RedisEventLog(redis_url, key_prefix=prefix)
    reader = RedisEventLog(redis_url, key_prefix=prefix, block_timeout=30, socket_timeout=60)
    first, second = new_run_id(), new_run_id()
    await writer.open(first)
    await writer.open(second)
    one = asyncio.ensure_future(drain(await reader.subscribe(first)))
    await _blocked(reader, 1)
    two = asyncio.ensure_future(drain(await reader.subscribe(second, after=f"{second}:0")))
    await _blocked(reader, 2)
    for seq in range(1, 4):
        await writer.append(make_event(second, seq, "run_end" if seq == 3 else "x"))
    assert await two == [1, 2, 3]
    await writer.append(make_event(first, 1, "run_end"))
    assert await one == [1]
    await writer.aclose()
    await reader.aclose()


async def _blocked(log: RedisEventLog, streams: int) -> None:
    """Until the log's XREAD loop is blocked in Redis on ``streams`` streams."""
    hub = log._feeds()
    client = log.client()
    async with asyncio.timeout(WAIT):
        while True:
            reading, conn_id = hub._reading, hub._conn_id
            if reading is not None and len(reading) == streams and conn_id is not None:
                info = await client.execute_command("CLIENT", "LIST", "ID", conn_id)
                if b"flags=b" in info and b"cmd=xread" in info:
                    return
            await asyncio.sleep(0.001)


async def test_a_cancelled_reader_does_not_disturb_the_others(redis_url: str, prefix: str) -> None:
    log = RedisEventLog(redis_url, key_prefix=prefix)
    run = new_run_id()
    await log.open(run)
    readers = [asyncio.ensure_future(drain(await log.subscribe(run))) for _ in range(3)]
    await _until(lambda: log._feeds()._reading is not None)
    readers[0].cancel()
    await log.append(make_event(run, 1))
    await log.append(make_event(run, 2, "run_end"))
    assert [await r for r in readers[1:]] == [[1, 2], [1, 2]]
    with pytest.raises(asyncio.CancelledError):
        await readers[0]
    await log.aclose()


async def test_readers_that_end_or_are_dropped_leave_and_the_loop_stops(
    redis_url: str, prefix: str
) -> None:
    log = RedisEventLog(redis_url, key_prefix=prefix)
    run = new_run_id()
    await log.append(make_event(run, 1))
    hub = log._feeds()
    dropped = await log.subscribe(run)
    assert (await asyncio.wait_for(anext(dropped), WAIT)).seq == 1
    closed = await log.subscribe(run)
    waiting = asyncio.ensure_future(drain(await log.subscribe(run)))
    await _until(lambda: hub._reading is not None)
    assert hub.feeds[run].users == 3
    del dropped
    gc.collect()
    await closed.aclose()  # type: ignore[attr-defined]
    assert hub.feeds[run].users == 1
    await log.append(make_event(run, 2, "run_end"))
    assert await waiting == [1, 2]
    assert hub.feeds == {}
    await _until(lambda: hub._task is None)  # no one waits: the connection is given back
    await log.aclose()


async def _until(condition: object) -> None:
    """Let the loop run (and Redis answer) until ``condition()`` holds."""
    assert callable(condition)
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.001)


async def test_another_replica_follows_a_session_live(redis_url: str, prefix: str) -> None:
    """A session followed on one log (replica) while runs open and log on another: the
    session's stream of runs comes through the reader's XREAD loop too."""
    writer = RedisEventLog(redis_url, key_prefix=prefix)
    reader = RedisEventLog(redis_url, key_prefix=prefix)
    session, first, second = new_run_id(), new_run_id(), new_run_id()
    stream = await follow_session(reader, session)
    got = asyncio.ensure_future(_ids(stream, 4))
    await _blocked(reader, 1)  # waiting for the session's first run
    for run in (first, second):
        await writer.open(run, session)
        await writer.append(make_event(run, 1, "x"))
        await writer.append(make_event(run, 2, "run_end"))
    assert await got == [f"{first}:1", f"{first}:2", f"{second}:1", f"{second}:2"]
    keys = writer.session_keys(session)
    assert await writer.client().xlen(keys[0]) == 2
    assert 0 < await writer.client().pttl(keys[1]) <= 86_400_000
    await writer.aclose()
    await reader.aclose()


async def _ids(stream: AsyncIterator[LogEntry], n: int) -> list[str]:
    async with asyncio.timeout(WAIT):
        return [(await anext(stream)).id for _ in range(n)]
