"""Durations in configuration: "250ms", "30s", "5m", "1h", "1d" or plain seconds."""

from __future__ import annotations

import re
from typing import NewType

__all__ = ["Duration", "format_duration", "parse_duration"]

#: Seconds, as a float. Options fields typed ``Duration`` accept "30s" in config files.
Duration = NewType("Duration", float)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")


def parse_duration(value: object) -> Duration:
    """Seconds from ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a number of seconds.

    Raises ``ValueError`` saying what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "30s", got {value!r}')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _RE.fullmatch(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f'expected a duration like "250ms", "30s", "5m" or "1h", got {value!r}')
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return Duration(seconds)


def format_duration(seconds: float) -> str:
    """The shortest exact form: 0.25 -> "250ms", 90 -> "90s", 300 -> "5m"."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:g}ms"
