"""A model provider whose pace the test controls, for timeouts, aborts and drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..agent.provider import ModelRequest, ProviderDone, ProviderEvent, TextDelta
from ..models import AssistantMessage

__all__ = ["GatedProvider"]


class GatedProvider:
    """Streams ``before`` as text deltas, then waits until :meth:`release` (or forever),
    then streams ``after`` and finishes. ``started`` is set when a call has streamed
    ``before``; ``calls`` counts calls."""

    def __init__(self, before: str = "partial answer", after: str = " done") -> None:
        self.before = before
        self.after = after
        self.started = asyncio.Event()
        self._gate = asyncio.Event()
        self.calls = 0

    def release(self) -> None:
        self._gate.set()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        self.calls += 1
        pieces = self.before.split(" ")
        for i, word in enumerate(pieces):
            yield TextDelta(word if i == len(pieces) - 1 else word + " ")
        self.started.set()
        await self._gate.wait()
        yield TextDelta(self.after)
        text = self.before + self.after
        yield ProviderDone(AssistantMessage(text, model=request.model.id, stop_reason="stop"))

    async def aclose(self) -> None:
        """Nothing to release."""
