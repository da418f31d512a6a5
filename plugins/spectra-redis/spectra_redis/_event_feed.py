"""One XREAD loop per event log and event loop, fanning live events out to subscribers.

Subscribers of a run share a :class:`Feed`: a short window of that run's latest entries
(decoded once, shared by every reader). Subscribers that have caught up wait on the
feed; the :class:`Hub` runs one ``XREAD BLOCK`` over the streams of every watched run on
a single connection, appends what it gets to the feeds and wakes their waiters. So a
thousand idle SSE clients hold one Redis connection, and an event costs one read, not
one per reader. A run newly watched interrupts the blocked read (``CLIENT UNBLOCK``) so
that it is read at once; should that fail, the read ends by itself within
``block_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from typing import Any

import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from spectra_core.errors import StoreError
from spectra_core.event_log import LogEntry

__all__ = ["Feed", "Hub", "entry_from_stream"]

#: Entries per stream in one XREAD reply.
XREAD_COUNT = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_from_stream(run_id: str, item: Any) -> LogEntry:
    """A LogEntry from a stream entry ``(b"<seq>-0", {b"t": type, b"j": json})`` (a dict
    from XREAD, a flat list from a script's XRANGE)."""
    stream_id, fields = item[0], item[1]
    if not isinstance(fields, dict):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    seq = int(_text(stream_id).partition("-")[0])
    return LogEntry.from_json(run_id, seq, _text(fields[b"t"]), _text(fields[b"j"]))


@attrs.define(eq=False)
class Feed:
    """What this process knows of one run's latest events.

    ``entries`` holds the contiguous seqs ``base .. pos``; the hub reads after ``pos``.
    ``head`` is the highest seq known to exist (for gap checks), ``ended`` whether
    ``run_end`` was seen; ``error`` the failure of the hub, raised to waiting readers.
    """

    run_id: str
    key: str
    cap: int
    entries: list[LogEntry] = attrs.Factory(list)
    base: int = 1
    pos: int = 0
    head: int = 0
    ended: bool = False
    error: StoreError | None = None
    users: int = 0
    _waiter: asyncio.Future[None] | None = None

    def get(self, seq: int) -> LogEntry | None:
        """The buffered entry of ``seq``, if any."""
        i = seq - self.base
        return self.entries[i] if 0 <= i < len(self.entries) else None

    def add(self, entries: Iterable[LogEntry], last: int = 0, ended: bool = False) -> None:
        """Take entries read or written (in seq order) and what is known of the run's
        ``last`` seq and end; wake the waiters if anything is new."""
        before = (self.pos, self.head, self.ended)
        for entry in entries:
            if entry.seq <= self.pos:
                continue
            if entry.seq != self.pos + 1 or not self.entries:
                self.entries, self.base = [entry], entry.seq
            else:
                self.entries.append(entry)
            self.pos = entry.seq
            self.ended = self.ended or entry.terminal
        self.head = max(self.head, self.pos, last)
        self.ended = self.ended or ended
        if len(self.entries) >= 2 * self.cap:
            drop = len(self.entries) - self.cap
            del self.entries[:drop]
            self.base += drop
        if (self.pos, self.head, self.ended) != before:
            self.wake()

    def skip_to(self, seq: int) -> None:
        """A reader caught up at ``seq`` past the buffer: the hub reads after ``seq``."""
        if seq > self.pos:
            self.entries, self.base, self.pos = [], seq + 1, seq
            self.head = max(self.head, seq)

    def changed(self) -> asyncio.Future[None]:
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: StoreError) -> None:
        self.error = error
        self.wake()


class Hub:
    """The XREAD loop of one event log on one event loop (see the module docstring).

    ``client`` gives the log's shared client; the loop holds one of its connections
    while any run is watched and gives it back when none is. ``describe_error`` turns a
    RedisError into the StoreError readers get.
    """

    def __init__(
        self,
        client: Callable[[], aioredis.Redis],
        *,
        block_ms: int,
        cap: int,
        describe_error: Callable[[RedisError, str], StoreError],
    ) -> None:
        self._client = client
        self._block_ms = block_ms
        self._cap = cap
        self._describe_error = describe_error
        self.loop = asyncio.get_running_loop()
        self.feeds: dict[str, Feed] = {}
        self._by_key: dict[str, Feed] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn_id: int | None = None
        self._reading: dict[KeyT, StreamIdT] | None = None  # the streams of the XREAD in flight
        self._unblocking: asyncio.Task[None] | None = None

    def attach(self, run_id: str, key: str) -> Feed:
        feed = self.feeds.get(run_id)
        if feed is None:
            feed = self.feeds[run_id] = self._by_key[key] = Feed(run_id, key, self._cap)
        feed.users += 1
        return feed

    def detach(self, feed: Feed) -> None:
        feed.users -= 1
        if feed.users <= 0 and self.feeds.get(feed.run_id) is feed:
            del self.feeds[feed.run_id]
            del self._by_key[feed.key]

    async def wait(self, feed: Feed, cursor: int) -> None:
        """Until the feed changes (new entries, the hub failed, or :meth:`wake_all`);
        the caller has read everything up to ``cursor``."""
        feed.skip_to(cursor)
        changed = feed.changed()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="spectra-redis event log XREAD")
        elif self._reading is not None and feed.key not in self._reading:
            self._interrupt()
        await asyncio.shield(changed)  # a cancelled reader must not cancel the others' wait

    def wake_all(self) -> None:
        for feed in self.feeds.values():
            feed.wake()

    async def aclose(self) -> None:
        for task in (self._task, self._unblocking):
            if task is not None and not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    def _interrupt(self) -> None:
        if self._conn_id is None or (self._unblocking and not self._unblocking.done()):
            return

        reading = self._reading

        async def unblock(conn_id: int) -> None:
            # 0 means that read is not blocked (yet): it may still be on its way to Redis
            for pause in (0.0, 0.005, 0.02, 0.1):
                await asyncio.sleep(pause)
                if self._reading is not reading:
                    return  # that read ended: the next one names every watched run
                with suppress(RedisError):  # not allowed (ACL) or down: the block times out
                    if await self._client().client_unblock(conn_id):
                        return

        self._unblocking = self.loop.create_task(unblock(self._conn_id))

    def _watched(self) -> dict[KeyT, StreamIdT]:
        return {f.key: f"{f.pos}-0" for f in self.feeds.values() if not f.ended}

    async def _run(self) -> None:
        conn = self._client().client()  # one connection of the pool, held while reading
        clean = False
        try:
            self._conn_id = int(await conn.client_id())
            while streams := self._watched():
                self._reading = streams
                try:
                    reply = await conn.xread(streams, count=XREAD_COUNT, block=self._block_ms)
                finally:
                    self._reading = None
                for key, items in _streams(reply):
                    feed = self._by_key.get(_text(key))
                    if feed is not None:
                        feed.add(entry_from_stream(feed.run_id, item) for item in items)
            clean = True
        except RedisError as exc:
            error = self._describe_error(exc, "reading live run events (XREAD)")
            for feed in list(self.feeds.values()):
                feed.fail(error)
            self.feeds.clear()
            self._by_key.clear()
        finally:
            if self._task is asyncio.current_task():  # a waiter from now on starts anew
                self._task = None
            self._conn_id = None
            await _give_back(conn, clean)


def _streams(reply: Any) -> list[tuple[Any, Any]]:
    """``[(key, items), ...]`` of an XREAD reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(k, v) for k, v in reply]


async def _give_back(conn: aioredis.Redis, clean: bool) -> None:
    """Return the loop's connection to the pool; one interrupted mid-read is dropped."""
    connection = conn.connection
    if not clean and connection is not None:
        await _shielded(connection.disconnect())
    await _shielded(conn.aclose())


async def _shielded(work: Awaitable[None]) -> None:
    with suppress(RedisError, OSError):
        await asyncio.shield(work)
