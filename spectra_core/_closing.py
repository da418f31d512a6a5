"""Closing what an engine or an assembly holds, each part once, whatever one raises."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

import structlog

__all__ = ["AsyncResource", "aclose_all"]

log = structlog.get_logger("spectra")


async def aclose_all(parts: Iterable[object]) -> None:
    """Await ``aclose()`` of each distinct part that has one (``None`` skipped); a part
    that fails to close is logged, and the others are still closed."""
    for part in {id(p): p for p in parts if p is not None}.values():
        aclose = getattr(part, "aclose", None)
        if aclose is None:
            continue
        try:
            await aclose()
        except Exception as exc:
            log.warning(
                "not closed", part=type(part).__name__, error=f"{type(exc).__name__}: {exc}"
            )


class AsyncResource:
    """``async with`` around ``aclose``, and a ``ping`` and ``aclose`` that have nothing
    to check or release: the optional base of stores and job queues."""

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests; the default has nothing to check."""

    async def aclose(self) -> None:
        """Release connections and files; the default has nothing to release."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
