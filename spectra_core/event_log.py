"""The run event log: every event of a run, by id, for any number of readers.

A run appends each event (``RunEvent.to_dict()``) before any client sees it; the event's
id is ``"<run_id>:<seq>"``. Readers subscribe from the start or after an id they saw
(``Last-Event-ID``), get exactly the events after it, in order and once, then the live
ones until the terminal ``run_end``. A log is bounded: a run keeps its last
``max_events`` events, and an ended run is forgotten ``retention`` seconds after its end.
Appending never waits for a reader; a reader that falls so far behind that its next event
was dropped gets :class:`EventLogGap`.

A run opened with its ``session_id`` is also one of the session's runs, in start order:
:func:`follow_session` reads every run of a session as one stream (what a client
watching a conversation wants), resuming after any event id of it.

Backends register under the kind ``event_log`` (``[event_log] backend = "memory"``) and
prove the contract with :class:`spectra_core.testing.EventLogConformance`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs
import msgspec

from .durations import Duration
from .errors import InvalidArgumentError, SpectraError
from .ids import validate_id

__all__ = [
    "TERMINAL_EVENT_TYPE",
    "EventLog",
    "EventLogGap",
    "EventLogOptions",
    "LogEntry",
    "RunLogNotFound",
    "build_event_log",
    "check_event",
    "event_id",
    "follow_session",
    "parse_event_id",
]

T = TypeVar("T")

#: The type of the one event that ends a run's stream.
TERMINAL_EVENT_TYPE = "run_end"

_MISSING = object()
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class RunLogNotFound(SpectraError, LookupError):
    """The log has no events of this run: it never started here, or it expired."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"no event log for run {run_id!r}: it is unknown or its retention has passed"
        )


class EventLogGap(SpectraError):
    """The events after ``after_seq`` are no longer kept (the log keeps the last
    ``max_events`` of a run); the reader cannot get exactly what it missed."""

    def __init__(self, run_id: str, after_seq: int, first_seq: int) -> None:
        self.run_id = run_id
        self.after_seq = after_seq
        self.first_seq = first_seq
        super().__init__(
            f"run {run_id!r}: events after seq {after_seq} are no longer in the log "
            f"(it now starts at seq {first_seq}); restart the stream from the beginning"
        )


def event_id(run_id: str, seq: int) -> str:
    """The stable id of an event: ``"<run_id>:<seq>"``."""
    return f"{run_id}:{seq}"


def parse_event_id(value: object) -> tuple[str, int]:
    """``(run_id, seq)`` from an event id, or InvalidArgumentError saying what is wrong."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"event id must be a string, got {type(value).__name__}")
    run_id, sep, seq = value.rpartition(":")
    if not sep or not seq.isdigit() or not seq.isascii():
        raise InvalidArgumentError(f"event id {value!r} is not of the form '<run_id>:<seq>'")
    validate_id(run_id, "run id of event id")
    return run_id, int(seq)


def check_event(event: object) -> tuple[str, int, str]:
    """``(run_id, seq, type)`` of an event mapping; InvalidArgumentError naming the field."""
    # exact-type checks first: this runs once per logged event
    if type(event) is not dict and not isinstance(event, Mapping):
        raise InvalidArgumentError(
            f"an event must be a mapping (RunEvent.to_dict()), got {type(event).__name__}"
        )
    run_id: Any = event.get("run_id")
    if type(run_id) is not str or run_id not in _valid_run_ids:
        run_id = validate_id(run_id, "event field 'run_id'")
        if len(_valid_run_ids) >= _VALID_RUN_IDS_KEPT:
            _valid_run_ids.clear()
        _valid_run_ids.add(run_id)
    seq = event.get("seq")
    if (type(seq) is not int and (not isinstance(seq, int) or isinstance(seq, bool))) or seq < 1:
        raise InvalidArgumentError(f"event field 'seq' must be an integer >= 1, got {seq!r}")
    type_ = event.get("type")
    if (type(type_) is not str and not isinstance(type_, str)) or not type_:
        raise InvalidArgumentError(f"event field 'type' must be a non-empty string, got {type_!r}")
    return run_id, seq, type_


#: Run ids that passed validate_id lately (a run logs many events under one id).
_valid_run_ids: set[str] = set()
_VALID_RUN_IDS_KEPT = 4096


@attrs.frozen(slots=False)
class LogEntry:
    """One logged event: its id, its type, its JSON text and the event as a mapping.

    ``LogEntry.of(event)`` checks the event and encodes it once (a thousand readers
    share that text); ``LogEntry.from_json(...)`` wraps stored JSON and decodes it on
    first use of :attr:`event`.
    """

    run_id: str
    seq: int
    type: str
    json: str = attrs.field(repr=False)
    _event: Mapping[str, Any] | None = attrs.field(default=None, alias="event", repr=False)
    _memo: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> LogEntry:
        run_id, seq, type_ = check_event(event)
        try:
            text = _encode(event).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidArgumentError(
                f"event {event_id(run_id, seq)} is not JSON-compatible: {exc}"
            ) from None
        return cls(run_id, seq, type_, text, event=event)

    @classmethod
    def from_json(cls, run_id: str, seq: int, type: str, json: str) -> LogEntry:
        return cls(run_id, seq, type, json)

    @property
    def id(self) -> str:
        return event_id(self.run_id, self.seq)

    @property
    def terminal(self) -> bool:
        return self.type == TERMINAL_EVENT_TYPE

    def memo(self, key: str, build: Callable[[LogEntry], T]) -> T:
        """``build(self)``, computed once per key: a transport's encoding of this entry
        (an SSE frame, a WebSocket message) shared by every reader of this object."""
        value: Any = self._memo.get(key, _MISSING)
        if value is _MISSING:
            value = self._memo[key] = build(self)
        return value  # type: ignore[no-any-return]

    @functools.cached_property
    def event(self) -> Mapping[str, Any]:
        if self._event is not None:
            return self._event
        decoded: dict[str, Any] = _decode(self.json)
        return decoded


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


def _not_negative(_: object, attribute: attrs.Attribute[Duration], value: Duration) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


@attrs.frozen
class EventLogOptions:
    """Options every event log takes: ``max_events`` kept per run (the oldest are
    dropped first) and ``retention``, how long an ended run stays readable."""

    max_events: int = attrs.field(default=10_000, validator=_positive)
    retention: Duration = attrs.field(default=Duration(300.0), validator=_not_negative)


@runtime_checkable
class EventLog(Protocol):
    """Where runs write their events and transports read them, by id."""

    async def open(self, run_id: str, session_id: str | None = None) -> None:
        """Declare a run so readers can subscribe before its first event (idempotent).
        With ``session_id``, the run is also the session's latest run (see
        :meth:`session_runs`)."""

    async def append(self, event: Mapping[str, Any]) -> LogEntry:
        """Log the next event of its run (``seq`` one more than the last); never waits
        for a reader. A ``run_end`` event ends the run: nothing may follow it."""

    async def subscribe(self, run_id: str, after: str | None = None) -> AsyncIterator[LogEntry]:
        """The run's events after the id ``after`` (all kept events when ``None``), then
        the live ones, ending after ``run_end``. Raises now RunLogNotFound, EventLogGap or
        InvalidArgumentError (a malformed id, an id of another run or ahead of the log);
        the iterator raises EventLogGap if the reader falls behind what is kept."""

    async def session_runs(
        self, session_id: str, after_run: str | None = None
    ) -> AsyncIterator[str]:
        """The ids of the runs opened on a session, in the order they were opened: those
        after ``after_run`` or, when ``None``, from the latest run if it has not ended
        (else from the next one); then each new run as it opens. It never ends by itself
        (only :meth:`aclose` of the log ends it). Raises now InvalidArgumentError for a
        malformed id, and RunLogNotFound when ``after_run`` is not a run of the session
        the log still knows. A log keeps at least the last 100 runs of a session."""

    async def ping(self) -> None:
        """Raise if the log cannot be used (a health check)."""

    async def aclose(self) -> None:
        """Release connections; readers still waiting end."""


async def follow_session(
    log: EventLog, session_id: str, after: str | None = None
) -> AsyncIterator[LogEntry]:
    """Every event of every run of a session, one run after another: from the run in
    progress (or the next to start), or exactly after the event id ``after`` (of any
    run of the session). The stream does not end by itself; runs that expire before
    their turn are skipped. Errors of the ids are raised now, as :meth:`EventLog.subscribe`
    does."""
    validate_id(session_id, "session id")
    after_run = parse_event_id(after)[0] if after is not None else None
    runs = await log.session_runs(session_id, after_run)
    first = await log.subscribe(after_run, after) if after_run is not None else None
    return _session_events(log, runs, first)


async def _session_events(
    log: EventLog, runs: AsyncIterator[str], first: AsyncIterator[LogEntry] | None
) -> AsyncIterator[LogEntry]:
    current = first
    try:
        if current is not None:
            async for entry in current:
                yield entry
        async for run_id in runs:
            try:
                current = await log.subscribe(run_id)
            except RunLogNotFound:
                continue  # it expired before its turn
            async for entry in current:
                yield entry
    finally:
        for it in (current, runs):
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()


def build_event_log(config: Any, registry: Any) -> EventLog | None:
    """The event log of a config's ``[event_log]`` section, or None without one."""
    from .config import _create

    if config.event_log is None:
        return None
    log: EventLog = _create(config.event_log, registry, config.source)
    return log
