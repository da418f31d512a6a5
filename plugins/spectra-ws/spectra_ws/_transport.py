"""WsTransport: run event streams over a Starlette WebSocket, with the SSE envelope."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import msgspec
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from spectra_core.errors import InvalidArgumentError, SpectraError
from spectra_core.event_log import EventLog, EventLogGap, LogEntry, follow_session

__all__ = ["CloseCode", "RunControl", "WsTransport", "ws_message"]

log = structlog.get_logger("spectra.ws")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class CloseCode:
    """The close codes a client can see (RFC 6455 ones and ours in 4000-4999)."""

    NORMAL = 1000  #: the client closed, or the transport is shutting down
    UNSUPPORTED_DATA = 1003  #: a binary frame: the protocol is JSON text
    INVALID_PAYLOAD = 1007  #: a text frame that is not a JSON object
    SLOW_CONSUMER = 4008  #: not read within send_timeout; reconnect and resume after an id


@runtime_checkable
class RunControl(Protocol):
    """What the socket needs to start and abort runs (an adapter over the engine)."""

    async def start_run(self, request: Mapping[str, Any]) -> str:
        """Start a run from ``{"user_id", "input", "session_id"?, "options"?}`` and return
        its run id once its events go to the event log (SpectraError when refused)."""

    def abort_session(self, session_id: str) -> bool:
        """Abort the run in progress on the session; False when there is none."""


def ws_message(entry: LogEntry) -> str:
    """``{"type": "event", "id", "event", "data"}`` for an entry, encoded once per entry."""

    def build(e: LogEntry) -> str:
        return (
            '{"type":"event","id":'
            + _encode(e.id).decode()
            + ',"event":'
            + _encode(e.type).decode()
            + ',"data":'
            + e.json
            + "}"
        )

    return entry.memo("ws", build)


class _Slow(Exception):
    pass


@attrs.frozen
class _Target:
    """What a subscription follows: a run (``run_id``) or a session (``session_id``)."""

    field: str
    id: str

    @classmethod
    def of(cls, message: Mapping[str, Any], op: str) -> _Target:
        run_id, session_id = message.get("run_id"), message.get("session_id")
        if isinstance(run_id, str) and session_id is None:
            return cls("run_id", run_id)
        if isinstance(session_id, str) and run_id is None:
            return cls("session_id", session_id)
        raise InvalidArgumentError(f"{op} needs a string 'run_id' or 'session_id' (one of them)")

    @property
    def key(self) -> str:
        """Its key among a socket's subscriptions (no id contains ``:``)."""
        return self.id if self.field == "run_id" else f"session:{self.id}"


class _Connection:
    """One socket: a bounded outbox drained by one sender, one pump per subscription."""

    def __init__(self, transport: WsTransport, ws: WebSocket) -> None:
        self.t = transport
        self.ws = ws
        self.outbox: asyncio.Queue[str] = asyncio.Queue(transport.send_buffer)
        self.subs: dict[str, asyncio.Task[None]] = {}

    async def reply(self, message: Mapping[str, Any]) -> None:
        await self.outbox.put(_encode(message).decode())

    async def sender(self) -> None:
        while True:
            text = await self.outbox.get()
            try:
                await asyncio.wait_for(self.ws.send_text(text), self.t.send_timeout_ms / 1000)
            except TimeoutError:
                raise _Slow from None

    async def pump(self, target: _Target, entries: AsyncIterator[LogEntry]) -> None:
        reason = "ended"
        try:
            async for entry in entries:
                await self.outbox.put(ws_message(entry))
        except EventLogGap as exc:
            reason = f"gap: {exc}"
        except (SpectraError, OSError) as exc:
            reason = f"error: {type(exc).__name__}: {exc}"
        finally:
            if self.subs.get(target.key) is asyncio.current_task():
                del self.subs[target.key]
            aclose = getattr(entries, "aclose", None)
            if aclose is not None:
                await aclose()
        await self.reply({"type": "end", target.field: target.id, "reason": reason})

    async def subscribe(self, message: Mapping[str, Any]) -> None:
        target = _Target.of(message, "subscribe")
        after = message.get("after")
        if not (after is None or isinstance(after, str)):
            raise InvalidArgumentError("subscribe: 'after' must be an event id (a string)")
        log = self.t.require_log()
        entries = (  # opened now: their errors answer this message
            await follow_session(log, target.id, after)
            if target.field == "session_id"
            else await log.subscribe(target.id, after)
        )
        old = self.subs.pop(target.key, None)
        if old is not None:
            old.cancel()
        await self.reply({"type": "subscribed", target.field: target.id, "after": after})
        self.subs[target.key] = asyncio.ensure_future(self.pump(target, entries))

    async def handle(self, message: Mapping[str, Any]) -> None:
        op = message.get("op")
        if op == "ping":
            await self.reply({"type": "pong", "data": message.get("data")})
        elif op == "subscribe":
            await self.subscribe(message)
        elif op == "unsubscribe":
            target = _Target.of(message, op)
            task = self.subs.pop(target.key, None)
            if task is not None:
                task.cancel()
            await self.reply({"type": "unsubscribed", target.field: target.id})
        elif op == "start":
            control = self.t.require_control(op)
            run_id = await control.start_run(message)
            await self.subscribe({"run_id": run_id})
            await self.reply({"type": "started", "run_id": run_id})
        elif op == "abort":
            session_id = message.get("session_id")
            if not isinstance(session_id, str):
                raise InvalidArgumentError("abort needs a string 'session_id'")
            aborted = self.t.require_control(op).abort_session(session_id)
            await self.reply({"type": "aborted", "session_id": session_id, "aborted": aborted})
        else:
            raise InvalidArgumentError(
                f"unknown op {op!r} (ping, subscribe, unsubscribe, start, abort)"
            )

    async def receiver(self) -> int:
        """Read client messages until it closes; the close code to answer with."""
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return CloseCode.NORMAL
            if msg.get("text") is None:
                return CloseCode.UNSUPPORTED_DATA
            try:
                message = _decode(msg["text"])
            except msgspec.DecodeError:
                return CloseCode.INVALID_PAYLOAD
            if not isinstance(message, dict):
                return CloseCode.INVALID_PAYLOAD
            try:
                await self.handle(message)
            except SpectraError as exc:
                await self.reply(
                    {
                        "type": "error",
                        "op": message.get("op"),
                        "ref": message.get("ref"),
                        "kind": type(exc).__name__,
                        "error": str(exc),
                    }
                )


class WsTransport:
    """Serves the WebSocket protocol of docs/transports.md on ``handle(websocket)``.

    ``log`` is the run event log read by id (set it before serving when the transport
    was built from config); ``control`` (optional) starts and aborts
    runs. Each socket has an outbox of ``send_buffer`` messages: a subscription waits
    when it is full (the log never does), and a client that does not read a message
    within ``send_timeout_ms`` is closed with 4008 (it may resume after its last id).
    """

    def __init__(
        self,
        log: EventLog | None = None,
        control: RunControl | None = None,
        *,
        send_buffer: int = 256,
        send_timeout_ms: int = 10_000,
    ) -> None:
        for name, value in (("send_buffer", send_buffer), ("send_timeout_ms", send_timeout_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"WsTransport {name} must be an integer >= 1: {value!r}")
        self.log = log
        self.control = control
        self.send_buffer = send_buffer
        self.send_timeout_ms = send_timeout_ms
        self.connections = 0
        #: how many sockets were closed with each code (what a client saw, or would have)
        self.close_codes: Counter[int] = Counter()

    def require_log(self) -> EventLog:
        if self.log is None:
            raise SpectraError("this WebSocket transport has no event log: set transport.log")
        return self.log

    def require_control(self, op: str) -> RunControl:
        if self.control is None:
            raise InvalidArgumentError(f"op {op!r} is not available: this socket only streams")
        return self.control

    async def handle(self, websocket: WebSocket) -> None:
        """The Starlette endpoint: ``WebSocketRoute("/ws", transport.handle)``."""
        await websocket.accept()
        conn = _Connection(self, websocket)
        self.connections += 1
        sender = asyncio.ensure_future(conn.sender())
        receiver = asyncio.ensure_future(conn.receiver())
        code = CloseCode.NORMAL
        try:
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and isinstance(sender.exception(), _Slow):
                code = CloseCode.SLOW_CONSUMER
                log.info("ws client too slow, closed", code=code)
            elif receiver.done() and receiver.exception() is None:
                code = receiver.result()
            elif receiver.done() and not isinstance(receiver.exception(), WebSocketDisconnect):
                receiver.result()  # an unexpected failure: let the server log it
        finally:
            self.connections -= 1
            tasks = [sender, receiver, *conn.subs.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close_codes[code] += 1
            await _close(websocket, code, self.send_timeout_ms / 1000)


async def _close(websocket: WebSocket, code: int, wait: float) -> None:
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    if websocket.client_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):  # the peer may be gone or stuck; we are done
        await asyncio.wait_for(websocket.close(code), wait)
