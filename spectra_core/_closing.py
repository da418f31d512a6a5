"""Closing what an engine or an assembly holds, each part once, whatever one raises."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

__all__ = ["aclose_all"]

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
