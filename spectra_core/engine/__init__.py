"""The session engine: one call runs a whole turn, with limits, caps, timeouts and drain."""

from ._turn import RetryPolicy
from .engine import BusyPolicy, HealthReport, Lifecycle, RunHandle, SessionEngine
from .events import EventType, RunEvent, RunStatus
from .options import RunOptions, RunResult

__all__ = [
    "BusyPolicy",
    "EventType",
    "HealthReport",
    "Lifecycle",
    "RetryPolicy",
    "RunEvent",
    "RunHandle",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "SessionEngine",
]
