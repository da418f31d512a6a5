"""A run's event queue, bounded with backpressure, and the provider wrapper that applies
it to the model's stream."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import attrs

from ..agent.provider import ModelProvider, ModelRequest, ProviderEvent
from .events import RunEvent

__all__ = ["EventQueue", "PacedProvider"]


@attrs.define(eq=False)
class EventQueue:
    """A run's events on their way to its reader, bounded with backpressure.

    The run waits in :meth:`room` while ``maxsize`` events are unread (it calls it before
    each piece it pulls from the model), so a slow reader pauses the run instead of
    growing memory. Events emitted between two waits (a turn's few events, a tool's
    progress) are never dropped. A reader that closes its stream (:meth:`close`) releases
    the run: later events are discarded, except the terminal one.
    """

    maxsize: int
    _items: deque[RunEvent] = attrs.field(factory=deque, init=False)
    _readable: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _writable: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    closed: bool = attrs.field(default=False, init=False)
    peak: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._writable.set()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: RunEvent) -> None:
        if self.closed and not event.terminal:
            return
        self._items.append(event)
        self.peak = max(self.peak, len(self._items))
        self._readable.set()
        if len(self._items) >= self.maxsize:
            self._writable.clear()

    async def get(self) -> RunEvent:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        event = self._items.popleft()
        if len(self._items) < self.maxsize:
            self._writable.set()
        return event

    async def room(self) -> None:
        """Return once fewer than ``maxsize`` events wait (or the reader is gone)."""
        while len(self._items) >= self.maxsize and not self.closed:
            await self._writable.wait()

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._writable.set()


@attrs.frozen
class PacedProvider:
    """A provider whose stream waits for room in the run's event queue before pulling
    each piece from the model: the backpressure of a slow reader."""

    inner: ModelProvider
    queue: EventQueue

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        source = self.inner.stream(request)
        try:
            while True:
                await self.queue.room()
                try:
                    event = await anext(source)
                except StopAsyncIteration:
                    return
                yield event
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def aclose(self) -> None:
        await self.inner.aclose()
