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
from ._event_log_lua import APPEND, OPEN, READ

__all__ = ["EXPIRY_GRACE", "RedisEventLog"]

#: Seconds Redis keeps an ended run's keys after its retention (readers stop seeing the
#: run at the retention exactly; the grace covers clocks of replicas that differ a little).
EXPIRY_GRACE = 60.0
#: Entries per catch-up read (one script call each).
READ_BATCH = 256
#: Entries of a run each process keeps decoded for its live readers (at most).
FEED_WINDOW = 1024


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

    async def open(self, run_id: str) -> None:
        self._check_open()
        keys = self.keys(validate_id(run_id, "run id"))
        args = [self._ms(self.clock.time()), self._ms(self.abandon_after)]
        try:
            await self._script().open(keys=keys, args=args)
        except RedisError as exc:
            raise self.error(exc, f"opening the event log of run {run_id!r}") from exc

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
        batch = await self._read(run_id, cursor, after)
        return _Reader(self, run_id, batch)

    async def _read(self, run_id: str, cursor: int, after: str | None = None) -> _Batch:
        """The kept events after ``cursor`` (-1: from the first kept), a batch at a time."""
        args = [cursor, READ_BATCH, self._ms(self.clock.time()), self.max_events]
        try:
            reply = await self._script().read(keys=self.keys(run_id), args=args)
        except RedisError as exc:
            raise self.error(exc, f"reading the events of run {run_id!r}") from exc
        status = reply[0]
        if status == 0:
            raise RunLogNotFound(run_id)
        if status == 2:
            raise InvalidArgumentError(
                f"event id {after or f'{run_id}:{cursor}'!r} is ahead of the log of run "
                f"{run_id!r} (its last event is seq {reply[1]})"
            )
        if status == 3:
            raise EventLogGap(run_id, cursor, int(reply[2]))
        entries = [entry_from_stream(run_id, item) for item in reply[4]]
        return _Batch(int(reply[1]), bool(reply[2]), int(reply[3]), entries)

    async def _next(self, run_id: str, hub: Hub, feed: Feed, cursor: int) -> list[LogEntry]:
        """The entries after ``cursor``: from the feed, from Redis when the feed does not
        have them, or once the hub brings them; [] when the stream ends."""
        while not self._closed and feed.error is None:
            entry = feed.get(cursor + 1)
            if entry is not None:
                return [entry]
            if cursor < feed.head:
                batch = await self._read(run_id, cursor)
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
    """One subscription: an async iterator over a run's entries after a cursor.

    It joins the run's feed when made (so events this process appends meanwhile count
    for its gap checks) and leaves it when it ends, is closed or is collected.
    """

    def __init__(self, log: RedisEventLog, run_id: str, batch: _Batch) -> None:
        self._log = log
        self._run_id = run_id
        self._hub = hub = log._feeds()
        self._feed = feed = hub.attach(run_id, log.keys(run_id)[0])
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
                    await self._log._next(self._run_id, self._hub, self._feed, self._cursor)
                )
                if not self._pending:
                    raise StopAsyncIteration
            entry = self._pending.popleft()
            first = max(1, self._feed.head - self._log.max_events + 1)
            if entry.seq < first:  # dropped since it was read
                raise EventLogGap(self._run_id, self._cursor, first)
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
