"""RedisEventLog: runs' events in Redis Streams, readable from every replica."""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from spectra_core.clock import Clock, SystemClock
from spectra_core.errors import InvalidArgumentError
from spectra_core.event_log import (
    EventLogGap,
    EventLogOptions,
    LogEntry,
    RunLogNotFound,
    parse_event_id,
)
from spectra_core.ids import validate_id

from ._client import RedisUser
from ._event_feed import Feed, Hub, entry_from_stream
from ._event_log_lua import APPEND, OPEN, READ, SESSION_ADD

__all__ = ["EXPIRY_GRACE", "SESSION_RUNS", "RedisEventLog"]

#: Seconds Redis keeps an ended run's keys after its retention (readers stop seeing the
#: run at the retention exactly; the grace covers clocks of replicas that differ a little).
EXPIRY_GRACE = 60.0
#: Entries per catch-up read (one script call each).
READ_BATCH = 256
#: Entries of a run each process keeps decoded for its live readers (at most).
FEED_WINDOW = 1024
#: Runs of a session the log remembers (at least: older ones are trimmed).
SESSION_RUNS = 100


@attrs.frozen
class _Stream:
    """What a reader follows: a run's events, or a session's runs (``name``
    ``session:<id>``, which no run id can be), with its keys and the entries kept."""

    name: str
    keys: tuple[str, str]
    window: int


@attrs.frozen
class _Batch:
    """One READ script answer: the run's ``last`` seq, whether it ``ended``, and
    ``entries`` after ``after``."""

    last: int
    ended: bool
    after: int
    entries: list[LogEntry]


@attrs.define(eq=False)
class _Scripts:
    client: aioredis.Redis
    open: AsyncScript
    append: AsyncScript
    read: AsyncScript
    session_add: AsyncScript


class RedisEventLog(RedisUser):
    """An :class:`~spectra_core.event_log.EventLog` in Redis Streams (see the docs).

    ``redis`` is a URL (a pool shared per URL and event loop) or a ``redis.asyncio.Redis``
    client (left open). ``clock`` (wall time, shared by replicas) decides when an ended
    run's ``retention`` has passed; Redis deletes its keys ``EXPIRY_GRACE`` later. A run
    with no new event for ``abandon_after`` seconds (its writer died before ``run_end``)
    is deleted by Redis (``0``: never). Live readers of a process share one connection
    blocked in ``XREAD`` for at most ``block_timeout`` seconds at a time.
    """

    def __init__(
        self,
        redis: aioredis.Redis | str,
        *,
        max_events: int = 10_000,
        retention: float = 300.0,
        key_prefix: str = "spectra",
        socket_timeout: float = 5.0,
        block_timeout: float = 1.0,
        abandon_after: float = 86_400.0,
        clock: Clock | None = None,
    ) -> None:
        EventLogOptions(max_events, retention)  # type: ignore[arg-type]  # validates both
        if not key_prefix or not isinstance(key_prefix, str):
            raise InvalidArgumentError(f"key_prefix must be a non-empty string, got {key_prefix!r}")
        super().__init__(redis, socket_timeout=socket_timeout)
        if not 0 < block_timeout < self.socket_timeout:
            raise InvalidArgumentError(
                f"block_timeout must be above 0 and below socket_timeout "
                f"({self.socket_timeout}s), got {block_timeout}"
            )
        if abandon_after < 0:
            raise InvalidArgumentError(
                f"abandon_after must be 0 (never) or more, got {abandon_after}"
            )
        self.max_events = max_events
        self.retention = float(retention)
        self.key_prefix = key_prefix
        self.block_timeout = float(block_timeout)
        self.abandon_after = float(abandon_after)
        self.clock: Clock = clock or SystemClock()
        self._scripts: _Scripts | None = None
        self._hub: Hub | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"RedisEventLog({self.url_shown!r}, max_events={self.max_events}, "
            f"retention={self.retention})"
        )

    # --- plumbing ---------------------------------------------------------------------

    def keys(self, run_id: str) -> tuple[str, str]:
        """The run's stream and meta hash keys (one hash tag: one Cluster slot)."""
        base = f"{self.key_prefix}:evlog:{{{run_id}}}"
        return f"{base}:s", f"{base}:m"

    def session_keys(self, session_id: str) -> tuple[str, str]:
        """The session's stream of runs and its meta hash (one hash tag)."""
        base = f"{self.key_prefix}:evsess:{{{session_id}}}"
        return f"{base}:s", f"{base}:m"

    def _run_stream(self, run_id: str) -> _Stream:
        return _Stream(run_id, self.keys(run_id), self.max_events)

    def _session_stream(self, session_id: str) -> _Stream:
        return _Stream(f"session:{session_id}", self.session_keys(session_id), SESSION_RUNS)

    def _ms(self, seconds: float) -> int:
        return round(seconds * 1000)

    def _script(self) -> _Scripts:
        client = self.client()
        scripts = self._scripts
        if scripts is None or scripts.client is not client:
            scripts = self._scripts = _Scripts(
                client,
                client.register_script(OPEN),
                client.register_script(APPEND),
                client.register_script(READ),
                client.register_script(SESSION_ADD),
            )
        return scripts

    def _feeds(self) -> Hub:
        hub = self._hub
        if hub is None or hub.loop is not asyncio.get_running_loop():
            hub = self._hub = Hub(
                self.client,
                block_ms=self._ms(self.block_timeout),
                cap=min(self.max_events, FEED_WINDOW),
                describe_error=self.error,
            )
        return hub

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this redis event log ({self.url_shown}) is closed")

    # --- writing ----------------------------------------------------------------------

    async def open(self, run_id: str, session_id: str | None = None) -> None:
        self._check_open()
        keys = self.keys(validate_id(run_id, "run id"))
        if session_id is not None:
            validate_id(session_id, "session id")
        args = [self._ms(self.clock.time()), self._ms(self.abandon_after)]
        try:
            await self._script().open(keys=keys, args=args)
            if session_id is not None:
                await self._add_to_session(session_id, run_id)
        except RedisError as exc:
            raise self.error(exc, f"opening the event log of run {run_id!r}") from exc

    async def _add_to_session(self, session_id: str, run_id: str) -> None:
        """Append the run to its session's runs (a second hash tag: a second call)."""
        stream = self._session_stream(session_id)
        grace = self._ms(self.retention + EXPIRY_GRACE)
        ttl = max(self._ms(self.abandon_after), grace) if self.abandon_after else 0
        n = int(
            await self._script().session_add(keys=stream.keys, args=[run_id, SESSION_RUNS, ttl])
        )
        hub = self._hub
        feed = hub.feeds.get(stream.name) if hub is not None else None
        if n and feed is not None:
            feed.add([LogEntry.from_json(stream.name, n, "run", run_id)])

    async def append(self, event: Mapping[str, Any]) -> LogEntry:
        entry = LogEntry.of(event)
        self._check_open()
        now = self._ms(self.clock.time())
        retention = self._ms(self.retention)
        args: list[str | int] = [
            entry.seq,
            entry.type,
            entry.json,
            self.max_events,
            1 if entry.terminal else 0,
            now,
            now + retention,
            retention + self._ms(EXPIRY_GRACE),
            self._ms(self.abandon_after),
        ]
        try:
            status, last = await self._script().append(keys=self.keys(entry.run_id), args=args)
        except RedisError as exc:
            raise self.error(exc, f"appending event {entry.id}") from exc
        if status == -1:
            raise InvalidArgumentError(
                f"run {entry.run_id!r} has ended (run_end logged); event seq {entry.seq} refused"
            )
        if status == -2:
            raise InvalidArgumentError(
                f"run {entry.run_id!r}: event seq {entry.seq} does not follow seq {last} "
                "(seq goes up by one per event)"
            )
        hub = self._hub
        feed = hub.feeds.get(entry.run_id) if hub is not None else None
        if feed is not None:  # readers in this process get it without a round trip
            feed.add([entry])
        return entry

    # --- reading ----------------------------------------------------------------------

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[LogEntry]:
        self._check_open()
        validate_id(run_id, "run id")
        cursor = -1
        if after is not None:
            after_run, cursor = parse_event_id(after)
            if after_run != run_id:
                raise InvalidArgumentError(
                    f"event id {after!r} belongs to run {after_run!r}, not {run_id!r}"
                )
        stream = self._run_stream(run_id)
        return _Reader(self, stream, await self._read(stream, cursor, after))

    async def session_runs(
        self, session_id: str, after_run: str | None = None
    ) -> AsyncIterator[str]:
        self._check_open()
        stream = self._session_stream(validate_id(session_id, "session id"))
        if after_run is not None:
            validate_id(after_run, "run id")
        batch = await self._read(stream, -1)  # every kept run: SESSION_RUNS < READ_BATCH
        cursor = batch.last
        if after_run is not None:
            found = [e.seq for e in batch.entries if e.json == after_run]
            if not found:
                raise RunLogNotFound(after_run)
            cursor = found[0]
        elif batch.entries and not await self._ended(batch.entries[-1].json):
            cursor = batch.entries[-1].seq - 1
        later = [e for e in batch.entries if e.seq > cursor]
        return _RunIds(_Reader(self, stream, attrs.evolve(batch, after=cursor, entries=later)))

    async def _ended(self, run_id: str) -> bool:
        """Whether a run has ended (or is gone)."""
        try:
            last, end = await self.client().hmget(self.keys(run_id)[1], ["last", "end"])
        except RedisError as exc:
            raise self.error(exc, f"reading the state of run {run_id!r}") from exc
        return last is None or end is not None

    async def _read(self, stream: _Stream, cursor: int, after: str | None = None) -> _Batch:
        """The kept entries after ``cursor`` (-1: from the first kept), a batch at a time."""
        name = stream.name
        args = [cursor, READ_BATCH, self._ms(self.clock.time()), stream.window]
        try:
            reply = await self._script().read(keys=stream.keys, args=args)
        except RedisError as exc:
            raise self.error(exc, f"reading the events of {name!r}") from exc
        status = reply[0]
        if status == 0:
            if stream.window == SESSION_RUNS and name.startswith("session:"):
                return _Batch(0, False, max(cursor, 0), [])  # no run yet
            raise RunLogNotFound(name)
        if status == 2:
            raise InvalidArgumentError(
                f"event id {after or f'{name}:{cursor}'!r} is ahead of the log of run "
                f"{name!r} (its last event is seq {reply[1]})"
            )
        if status == 3:
            raise EventLogGap(name, cursor, int(reply[2]))
        entries = [entry_from_stream(name, item) for item in reply[4]]
        return _Batch(int(reply[1]), bool(reply[2]), int(reply[3]), entries)

    async def _next(self, stream: _Stream, hub: Hub, feed: Feed, cursor: int) -> list[LogEntry]:
        """The entries after ``cursor``: from the feed, from Redis when the feed does not
        have them, or once the hub brings them; [] when the stream ends."""
        while not self._closed and feed.error is None:
            entry = feed.get(cursor + 1)
            if entry is not None:
                return [entry]
            if cursor < feed.head:
                batch = await self._read(stream, cursor)
                feed.add(batch.entries, batch.last, batch.ended)
                if batch.entries:
                    return batch.entries
            if feed.ended:
                return []
            await hub.wait(feed, cursor)
        if feed.error is not None and not self._closed:
            raise feed.error
        return []

    # --- upkeep -----------------------------------------------------------------------

    async def ping(self) -> None:
        """PING Redis; StoreError naming the URL (never its password) if it fails."""
        self._check_open()
        try:
            await self.client().ping()
        except RedisError as exc:
            raise self.error(exc, "ping") from exc

    async def aclose(self) -> None:
        """End waiting readers, stop the XREAD loop and give the shared pool back."""
        self._closed = True
        hub, self._hub = self._hub, None
        if hub is not None:
            hub.wake_all()
            if hub.loop is asyncio.get_running_loop():
                await hub.aclose()
        await self.release()


class _Reader:
    """One subscription: an async iterator over a stream's entries after a cursor.

    It joins the stream's feed when made (so entries this process appends meanwhile
    count for its gap checks) and leaves it when it ends, is closed or is collected.
    """

    def __init__(self, log: RedisEventLog, stream: _Stream, batch: _Batch) -> None:
        self._log = log
        self._stream = stream
        self._hub = hub = log._feeds()
        self._feed = feed = hub.attach(stream.name, stream.keys[0])
        self._leave = weakref.finalize(self, hub.detach, feed)
        feed.add(batch.entries, batch.last, batch.ended)
        self._pending = collections.deque(batch.entries)
        self._cursor = batch.after

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> LogEntry:
        if not self._leave.alive:
            raise StopAsyncIteration
        try:
            if not self._pending:
                self._pending.extend(
                    await self._log._next(self._stream, self._hub, self._feed, self._cursor)
                )
                if not self._pending:
                    raise StopAsyncIteration
            entry = self._pending.popleft()
            first = max(1, self._feed.head - self._stream.window + 1)
            if entry.seq < first:  # dropped since it was read
                raise EventLogGap(self._stream.name, self._cursor, first)
        except BaseException:
            self._leave()
            raise
        self._cursor = entry.seq
        if entry.terminal:
            self._leave()
        return entry

    async def aclose(self) -> None:
        """Stop reading (the run goes on)."""
        self._leave()


class _RunIds:
    """A session's runs as run ids (the entries of its stream hold them)."""

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader

    def __aiter__(self) -> _RunIds:
        return self

    async def __anext__(self) -> str:
        return (await anext(self._reader)).json

    async def aclose(self) -> None:
        await self._reader.aclose()
