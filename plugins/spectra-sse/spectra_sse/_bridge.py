"""SseBridge: SSE clients, each reading the run event log through its own bounded buffer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import structlog
from sse_starlette import ServerSentEvent

from spectra_core.errors import InvalidArgumentError
from spectra_core.event_log import EventLog, EventLogGap, LogEntry
from spectra_core.ids import validate_id
from spectra_memory import MemoryEventLog

__all__ = ["ReconnectInfo", "RunStream", "SseBridge", "SseClient", "SseClientWriter", "sse_frame"]

log = structlog.get_logger("spectra.sse")


@attrs.frozen
class ReconnectInfo:
    """What an EventSource client should do after a drop: wait ``timeout`` ms (sent as
    the stream's ``retry:``), give up after ``max_attempts`` failed reconnects."""

    timeout: int
    max_attempts: int


def _frame(entry: LogEntry) -> bytes:
    return ServerSentEvent(entry.json, event=entry.type, id=entry.id, sep="\n").encode()


def sse_frame(entry: LogEntry) -> bytes:
    """``id:``, ``event:`` and ``data:`` of an entry, encoded once per entry object."""
    return entry.memo("sse", _frame)


_END = object()


class SseClient:
    """One client: its buffer of raw writes and its current connection.

    A client with a writer (``add_client`` before it connected) has a pump task filling
    its buffer from the log, so writes and events interleave and ``end()`` is graceful.
    Any other client's response reads the log directly (one task switch less per event);
    writes to it go out before its next event, and ``end()`` cuts its stream.
    """

    def __init__(self, bridge: SseBridge, client_id: str, buffer: int) -> None:
        self.bridge = bridge
        self.id = client_id
        self.queue: asyncio.Queue[object] = asyncio.Queue(buffer)
        self.pump: asyncio.Task[None] | None = None
        self.end_reason: str | None = None
        self.connected = False
        self.has_writer = False
        self.pumped = 0
        self.direct: AsyncIterator[LogEntry] | None = None  # read by frames() itself
        self.first: asyncio.Future[LogEntry] | None = None  # its first read, started early
        self.stream: asyncio.Task[None] | None = None  # the response, cut by end()
        self.sending_since: float | None = None  # loop time a pending send started
        self.stuck = False  # cut off with a send pending: no closing frame

    def push(self, item: object) -> bool:
        """Queue ``item`` without waiting; a full buffer disconnects the client."""
        if self.end_reason is not None:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.end("slow: buffer full")
            return False
        return True

    def end(self, reason: str) -> None:
        """Close the stream (after what is buffered, for a client with a pump)."""
        if self.end_reason is None:
            self.end_reason = reason
            if self.pump is not None and asyncio.current_task() is not self.pump:
                self.pump.cancel()
            with contextlib.suppress(asyncio.QueueFull):  # else frames() sees end_reason
                self.queue.put_nowait(_END)
            stream = self.stream
            if (
                self.direct is not None
                and stream is not None
                and asyncio.current_task() is not stream
            ):
                stream.cancel()

    def cut(self, reason: str) -> None:
        """Drop the connection now (its socket is not drained): no closing frame."""
        self.end(reason)
        self.stuck = True
        if self.stream is not None and asyncio.current_task() is not self.stream:
            self.stream.cancel()

    async def _pump(self, it: AsyncIterator[LogEntry]) -> None:
        reason = "ended"
        try:
            async for entry in it:
                await self.queue.put(entry)
                self.pumped += 1
        except EventLogGap as exc:
            reason = f"gap: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the log failed: end this stream, the client may resume
            log.warning("sse log read failed", client_id=self.id, error=repr(exc))
            reason = f"error: {type(exc).__name__}"
        self.end(reason)

    async def frames(self, retry_ms: int) -> AsyncIterator[bytes]:
        """What the response sends: ``retry:``, then entries and raw writes until the end."""
        yield ServerSentEvent(retry=retry_ms, sep="\n").encode()
        it = self.direct
        if it is None:
            while True:
                if self.end_reason is not None and self.queue.empty():
                    return
                item = await self.queue.get()
                if item is _END:
                    return
                yield sse_frame(item) if isinstance(item, LogEntry) else item  # type: ignore[misc]
        if self.end_reason is not None:  # ended before its response started
            return
        # The direct path reads the log here, in one generator (a level less per event).
        try:
            entry: LogEntry | None = None
            if self.first is not None:
                try:
                    entry = await self.first
                except StopAsyncIteration:
                    return
            queue = self.queue
            while True:
                if entry is None:
                    entry = await anext(it)
                if queue.qsize():  # raw writes go out before the next event
                    writes = self._writes()
                    if writes is None:
                        return
                    for raw in writes:
                        yield raw
                yield entry.memo("sse", _frame)
                entry = None
        except StopAsyncIteration:
            pass
        except EventLogGap as exc:
            self.end_reason = self.end_reason or f"gap: {exc}"
        except Exception as exc:  # the log failed: end this stream, the client may resume
            log.warning("sse log read failed", client_id=self.id, error=repr(exc))
            self.end_reason = self.end_reason or f"error: {type(exc).__name__}"
        self.end_reason = self.end_reason or "ended"

    def _writes(self) -> list[bytes] | None:
        """Raw writes queued now; None once the end marker is reached."""
        out: list[bytes] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is _END:
                return None
            out.append(item)  # type: ignore[arg-type]
        return out

    async def disconnect(self) -> None:
        """The connection is over: stop reading the log; its writer now returns False."""
        self.connected = False
        if self.end_reason is None:
            self.end_reason = "disconnected"
        if self.pump is not None:
            self.pump.cancel()
            await asyncio.gather(self.pump, return_exceptions=True)
            self.pump = None
        if self.first is not None:
            self.first.cancel()
            await asyncio.gather(self.first, return_exceptions=True)
        self.bridge._forget(self)


class SseClientWriter:
    """Writes to one client (the original's writer): ``write`` raw SSE text, ``end``."""

    def __init__(self, client: SseClient) -> None:
        self._client = client

    @property
    def client_id(self) -> str:
        return self._client.id

    def write(self, data: str | bytes) -> bool:
        """Queue raw SSE text (e.g. ``"data: hello\\n\\n"``) for this client only; False
        if the client has ended or its buffer is full (it is then disconnected)."""
        return self._client.push(data.encode() if isinstance(data, str) else bytes(data))

    def end(self) -> None:
        """Close this client's stream after what is queued."""
        self._client.end("ended by the server")


@attrs.frozen
class RunStream:
    """One run's events as an SSE source: ``create_sse_response(bridge.run_stream(id), req)``."""

    bridge: SseBridge
    run_id: str


class SseBridge:
    """SSE clients of one application, the original's ``SseBridge``.

    ``send(event)`` broadcasts to every client of the bridge's own stream: it is logged
    first (``log``, default an in-memory one) under the run id ``stream_id``, so a client
    that reconnects with ``Last-Event-ID`` gets exactly what it missed.
    ``run_stream(run_id)`` is a source for one run's events from the same log. A client
    whose socket is not drained within ``send_timeout_ms``, or whose buffer of
    ``client_buffer`` frames is full, is disconnected; the others and the writer go on.
    """

    def __init__(
        self,
        heartbeat_interval_ms: int = 15_000,
        reconnect_timeout_ms: int = 5_000,
        max_attempts: int = 10,
        *,
        send_timeout_ms: int = 10_000,
        client_buffer: int = 256,
        log: EventLog | None = None,
        stream_id: str | None = None,
    ) -> None:
        for name, value in (
            ("heartbeat_interval_ms", heartbeat_interval_ms),
            ("reconnect_timeout_ms", reconnect_timeout_ms),
            ("max_attempts", max_attempts),
            ("send_timeout_ms", send_timeout_ms),
            ("client_buffer", client_buffer),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"SseBridge {name} must be an integer >= 1: {value!r}")
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.reconnect_timeout_ms = reconnect_timeout_ms
        self.max_attempts = max_attempts
        self.send_timeout_ms = send_timeout_ms
        self.client_buffer = client_buffer
        self.log: EventLog = log if log is not None else MemoryEventLog()
        self.stream_id = validate_id(stream_id or f"bridge-{uuid.uuid4().hex[:12]}", "stream id")
        self.clients: dict[str, SseClient] = {}
        self._seq = 0
        self._send_lock = asyncio.Lock()
        self._opened = False
        self._watchdog: asyncio.Task[None] | None = None

    # --- the original's API -------------------------------------------------------------

    def add_client(self, client_id: str) -> SseClientWriter:
        """Register a client (best before it connects) and return its writer."""
        client = self._client(client_id)
        client.has_writer = True
        return SseClientWriter(client)

    def _client(self, client_id: str) -> SseClient:
        validate_id(client_id, "client id")
        client = self.clients.get(client_id)
        if client is None:
            client = self.clients[client_id] = SseClient(self, client_id, self.client_buffer)
        return client

    def remove_client(self, client_id: str) -> None:
        client = self.clients.get(client_id)
        if client is not None:
            client.end("removed")
            self.clients.pop(client_id, None)

    async def send(self, event: Mapping[str, Any]) -> LogEntry:
        """Broadcast ``event`` (a mapping with a ``type``) to the bridge's clients."""
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise InvalidArgumentError(f"an SSE event must be a mapping with a 'type': {event!r}")
        async with self._send_lock:
            entry = await self.log.append({**event, "run_id": self.stream_id, "seq": self._seq + 1})
            self._seq += 1
            return entry

    def get_reconnect_info(self) -> ReconnectInfo:
        return ReconnectInfo(self.reconnect_timeout_ms, self.max_attempts)

    # --- streams ------------------------------------------------------------------------

    def run_stream(self, run_id: str) -> RunStream:
        """A source for one run (a bad id is answered 400 by the response)."""
        return RunStream(self, run_id)

    @property
    def client_count(self) -> int:
        """Clients connected now."""
        return sum(1 for c in self.clients.values() if c.connected)

    async def connect(self, client_id: str, run_id: str, after: str | None) -> SseClient:
        """Subscribe a client to ``run_id`` after ``after`` and start filling its buffer.

        Raises what ``EventLog.subscribe`` raises. A client id already connected is
        taken over: the older connection ends.
        """
        if run_id == self.stream_id and not self._opened:
            await self.log.open(run_id)
            self._opened = True
        it = await self.log.subscribe(run_id, after)
        old = self.clients.get(client_id)
        if old is not None and old.connected:
            old.end("replaced by a new connection")
            del self.clients[client_id]
        client = self._client(client_id)  # a client added before connecting keeps its writes
        client.connected = True
        self._watch_sends()
        if client.end_reason is not None:
            pass
        elif client.has_writer:
            client.pump = asyncio.ensure_future(client._pump(it))
        else:
            client.direct = it
            client.first = asyncio.ensure_future(anext(it))
        return client

    def _watch_sends(self) -> None:
        """Start the send watchdog unless it runs (one task per bridge, not a timer per
        send: arming a timeout around every send cost more than the rest of an event)."""
        task = self._watchdog
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._watchdog = asyncio.ensure_future(self._cut_stuck_clients())

    async def _cut_stuck_clients(self) -> None:
        """Cut off every client whose pending send is ``send_timeout_ms`` old (checked four
        times per timeout, so within 1.25x of it); stops when no client is connected."""
        loop = asyncio.get_running_loop()
        timeout = self.send_timeout_ms / 1000
        while any(c.connected for c in self.clients.values()):
            await asyncio.sleep(timeout / 4)
            now = loop.time()
            for client in list(self.clients.values()):
                since = client.sending_since
                if since is not None and now - since >= timeout:
                    client.cut("slow: send timed out")
                    log.info("sse client too slow, disconnected", client_id=client.id)

    def _forget(self, client: SseClient) -> None:
        if self.clients.get(client.id) is client:
            del self.clients[client.id]

    async def aclose(self) -> None:
        """End every client's stream."""
        for client in list(self.clients.values()):
            client.end("bridge closed")
        if self._watchdog is not None:
            self._watchdog.cancel()
