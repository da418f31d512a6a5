"""Validation of breaker settings, shared by the constructor and the options class."""

from __future__ import annotations

import math

from ..errors import InvalidArgumentError

__all__ = ["check_percentage", "check_positive", "check_positive_int"]


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an integer of at least 1, else :class:`InvalidArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"circuit breaker {name} must be an integer of at least 1, got {value!r}"
        )
    return value


def check_positive(name: str, value: object, unit: str) -> float:
    """``value`` as a float if it is a finite number above zero."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidArgumentError(
            f"circuit breaker {name} must be a finite number of {unit} above zero, got {value!r}"
        )
    return float(value)


def check_percentage(name: str, value: object) -> float:
    """``value`` as a float if it is a percentage in (0, 100]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 100
    ):
        raise InvalidArgumentError(
            f"circuit breaker {name} must be a percentage above 0 and at most 100, got {value!r}"
        )
    return float(value)
