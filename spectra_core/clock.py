"""Injectable time: production code asks a :class:`Clock`, tests pass a ``FakeClock``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "utc_from_timestamp"]


@runtime_checkable
class Clock(Protocol):
    """A source of time. ``time`` is wall-clock seconds since the epoch, ``monotonic``
    never goes backwards, ``sleep`` waits (a fake clock returns when time is advanced)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def utc_from_timestamp(seconds: float) -> datetime:
    """An aware UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(seconds, UTC)
