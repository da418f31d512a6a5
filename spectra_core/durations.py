"""Durations in configuration: "250ms", "30s", "5m", "1h", "1d" or plain seconds."""

from __future__ import annotations

import math
import re
from typing import NewType

from .errors import InvalidArgumentError

__all__ = ["MAX_DURATION", "Duration", "format_duration", "parse_duration"]

#: Seconds, as a float. Options fields typed ``Duration`` accept "30s" in config files.
Duration = NewType("Duration", float)

#: The longest duration accepted: 100 years, in seconds (timers, sleeps and key expiry
#: all have an upper bound, and a longer one is a typo more often than a wish).
MAX_DURATION = 100 * 365.25 * 86400.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_EXPECTED = 'expected a duration like "250ms", "30s", "5m" or "1h"'


def parse_duration(value: object) -> Duration:
    """Seconds from ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a number of seconds.

    Raises :class:`~spectra_core.InvalidArgumentError` (a ``ValueError``) saying what is
    accepted: NaN, infinities, negative values and anything above :data:`MAX_DURATION`
    are refused.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{_EXPECTED}, got {value!r}")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := _RE.fullmatch(value)):
            seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        else:
            raise InvalidArgumentError(f"{_EXPECTED}, got {value!r}")
    except OverflowError:  # an int beyond any float
        seconds = math.inf
    if math.isnan(seconds):
        raise InvalidArgumentError(f"a duration must be a number of seconds, got {value!r}")
    if seconds < 0:
        raise InvalidArgumentError(f"a duration cannot be negative, got {_short(value)}")
    if seconds > MAX_DURATION:
        raise InvalidArgumentError(
            f"a duration must be finite and at most 100 years ({MAX_DURATION:.0f}s), "
            f"got {_short(value)}"
        )
    return Duration(seconds)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float) -> str:
    """The shortest exact form: 0.25 -> "250ms", 90 -> "90s", 300 -> "5m"."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:g}ms"
