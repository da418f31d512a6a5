"""Real stores with a fault or a pause injected at one point, for the engine's failure
paths (a networked store's behaviours, reproduced in process)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs

from spectra_core import AuditEntry, Session
from spectra_memory import InMemorySessionStore

T = TypeVar("T")

#: Given the session being saved, the exception its save raises (None: save normally).
Fault = Callable[[Session], BaseException | None]


def finishing(session: Session) -> bool:
    """Whether this save carries the run's ``run_finished`` audit."""
    return any(
        isinstance(e, AuditEntry) and e.event_type == "run_finished"
        for e in session.unsaved_entries
    )


class FaultyStore(InMemorySessionStore):
    """An in-memory store whose saves raise what ``fault`` returns, and whose saves can
    be paused (``pause_saves``) before writing or, with ``land=True``, after writing
    but before acknowledging (the write landed; its caller never hears so)."""

    def __init__(self, fault: Fault | None = None) -> None:
        super().__init__()
        self.fault = fault
        self.paused: asyncio.Event | None = None
        self.land = False
        self.entered = asyncio.Event()

    def pause_saves(self, *, land: bool = False) -> None:
        self.paused, self.land = asyncio.Event(), land
        self.entered.clear()

    def resume(self) -> None:
        if self.paused is not None:
            self.paused.set()
        self.paused = None

    async def save(self, session: Session) -> None:
        error = self.fault(session) if self.fault else None
        if error is not None:
            raise error
        gate = self.paused
        if gate is None:
            await super().save(session)
            return
        self.entered.set()
        if not self.land:
            await gate.wait()
            await super().save(session)
            return
        saved = len(session.entries) - len(session.unsaved_entries)
        shadow = attrs.evolve(session, entries=list(session.entries), saved_count=saved)
        await super().save(shadow)  # the write lands ...
        await gate.wait()  # ... and the caller may be cancelled before it hears so
        session.mark_saved(shadow.version)


async def bounded(aw: Awaitable[T], seconds: float = 10) -> T:
    """Await ``aw``, failing the test (not hanging it) if it never completes."""
    async with asyncio.timeout(seconds):
        return await aw
