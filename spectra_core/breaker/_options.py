"""CircuitBreakerOptions: the ``[breaker]`` settings shared by every breaker backend."""

from __future__ import annotations

from typing import Any

import attrs

from ..durations import Duration
from ._checks import check_percentage, check_positive, check_positive_int

__all__ = ["CircuitBreakerOptions"]


def _positive_int(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    check_positive_int(attribute.name, value)


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None or attribute.default is not None:
        check_positive(attribute.name, value, "seconds")


def _percentage(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None or attribute.default is not None:
        check_percentage(attribute.name, value)


@attrs.frozen
class CircuitBreakerOptions:
    """Settings of a circuit breaker, in config-file units (durations in seconds).

    Backends subclass it to add their own fields. Invalid values raise
    :class:`~spectra_core.InvalidArgumentError` naming the option.
    """

    failure_threshold: int = attrs.field(default=5, validator=_positive_int)
    """Consecutive failures that open a closed breaker."""
    reset_timeout: Duration = attrs.field(default=Duration(30.0), validator=_seconds)
    """How long an open breaker fails fast before it lets probes through."""
    half_open_max_requests: int = attrs.field(default=3, validator=_positive_int)
    """Probe permits in half-open; this many successful probes close the breaker."""
    failure_rate_threshold: float | None = attrs.field(default=None, validator=_percentage)
    """Failure percentage over the sliding window that opens the breaker (off if None)."""
    sliding_window_size: int = attrs.field(default=100, validator=_positive_int)
    """How many of the latest call outcomes the rates are computed over."""
    minimum_number_of_calls: int = attrs.field(default=100, validator=_positive_int)
    """Outcomes the window must hold before a rate can open the breaker."""
    slow_call_duration: Duration | None = attrs.field(default=None, validator=_seconds)
    """Calls taking longer than this are slow (slow-call detection off if None)."""
    slow_call_rate_threshold: float = attrs.field(default=100.0, validator=_percentage)
    """Slow-call percentage over the sliding window that opens the breaker."""
    max_half_open: Duration | None = attrs.field(default=None, validator=_seconds)
    """Longest stay in half-open before the breaker reopens (no limit if None)."""
