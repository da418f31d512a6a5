"""The job queue contract that every queue backend implements (backend kind ``job_queue``).

A job belongs to a session. Jobs of one session are served strictly in enqueue order
and at most one of them is leased at a time, across every worker; jobs of different
sessions are independent. A worker *leases* a job for ``lease_timeout`` seconds, renews
the lease while it works, then completes or fails it. A lease that runs out (its worker
died) counts as a failed attempt. A failed job is retried after a backoff
(:class:`JobRetry`) and, after ``max_attempts`` failed attempts, moves to the dead letters
with its last error; the next job of its session then proceeds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import attrs

from .._closing import AsyncResource
from ..errors import InvalidArgumentError, SpectraError
from ..ids import validate_id

__all__ = [
    "MAX_KEY_LENGTH",
    "Job",
    "JobNotFound",
    "JobQueue",
    "JobQueueBase",
    "JobRetry",
    "JobStatus",
    "Lease",
    "LeaseLostError",
    "check_enqueue",
    "check_json",
]

#: Longest idempotency key accepted by ``enqueue``.
MAX_KEY_LENGTH = 256


class JobNotFound(SpectraError, LookupError):
    """No job with this id is known to the queue (never enqueued, or long forgotten)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} not found")


class LeaseLostError(SpectraError):
    """The worker no longer holds this lease: it ran out and the job was reclaimed (or
    finished). Nothing was written; the worker should drop the job."""


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"  # waiting for its turn (and, after a failure, its backoff)
    RUNNING = "running"  # leased by a worker
    COMPLETED = "completed"
    DEAD = "dead"  # failed max_attempts times; kept in the dead letters with its error

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.DEAD)


@attrs.frozen(kw_only=True)
class Job:
    """A snapshot of one job. ``attempts`` counts the leases that started it (a released
    lease does not count); ``error`` is the last failure's; times are the queue clock's
    epoch seconds."""

    id: str
    session_id: str
    payload: Mapping[str, Any]
    key: str | None = None
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    enqueued_at: float = 0.0
    available_at: float = 0.0
    worker_id: str | None = None
    lease_expires_at: float | None = None
    result: Any = None
    error: str | None = None
    finished_at: float | None = None

    @property
    def input(self) -> str:
        """The input text of an agent job (``payload["input"]``)."""
        return str(self.payload.get("input", ""))

    @property
    def options(self) -> Mapping[str, Any]:
        """The run options of an agent job (``payload["options"]``)."""
        options: Mapping[str, Any] = self.payload.get("options") or {}
        return options


@attrs.frozen(kw_only=True)
class Lease:
    """A worker's hold on a running job; ``token`` fences out a worker whose lease ran
    out and whose job another worker now holds."""

    job: Job
    token: str
    worker_id: str
    expires_at: float


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise InvalidArgumentError(f"JobRetry.{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class JobRetry:
    """When a failed job runs again, and when it is given up.

    The wait after the n-th failed attempt is ``schedule[n-1]`` (its last value repeated)
    if a ``schedule`` is given, else ``wait_initial * wait_exp_base ** (n - 1)`` capped at
    ``wait_max`` (stamina's exponential backoff, without jitter so that every worker and
    backend agrees). A job that fails its ``max_attempts``-th attempt goes to the dead
    letters.
    """

    max_attempts: int = attrs.field(default=5)
    wait_initial: float = attrs.field(default=1.0, validator=_non_negative)
    wait_max: float = attrs.field(default=60.0, validator=_non_negative)
    wait_exp_base: float = attrs.field(default=2.0)
    schedule: tuple[float, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )

    @max_attempts.validator
    def _check_attempts(self, _: object, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"JobRetry.max_attempts must be >= 1, got {value!r}")

    @wait_exp_base.validator
    def _check_base(self, _: object, value: float) -> None:
        if value < 1:
            raise InvalidArgumentError(f"JobRetry.wait_exp_base must be >= 1, got {value}")

    @schedule.validator
    def _check_schedule(self, _: object, value: tuple[float, ...] | None) -> None:
        if value is not None and (not value or any(w < 0 for w in value)):
            raise InvalidArgumentError(
                f"JobRetry.schedule must be a non-empty list of waits >= 0, got {value!r}"
            )

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        n = max(failures, 1)
        if self.schedule is not None:
            return float(self.schedule[min(n, len(self.schedule)) - 1])
        try:
            wait = self.wait_initial * self.wait_exp_base ** (n - 1)
        except OverflowError:  # a long-failing job: the cap applies
            return float(self.wait_max)
        return float(min(wait, self.wait_max))

    def gives_up(self, attempts: int) -> bool:
        """Whether a job whose ``attempts``-th attempt failed goes to the dead letters."""
        return attempts >= self.max_attempts


@runtime_checkable
class JobQueue(Protocol):
    """What the worker pool needs from a queue backend. See the module docstring."""

    lease_timeout: float
    retry: JobRetry

    async def enqueue(
        self, session_id: str, payload: Mapping[str, Any], *, key: str | None = None
    ) -> Job:
        """Add a job at the end of its session's line. With a ``key``, enqueueing again
        returns the job first enqueued with it (a different session or payload for the
        same key is an InvalidArgumentError)."""
        ...

    async def lease(self, worker_id: str, *, wait: float = 0.0) -> Lease | None:
        """Reclaim expired leases, then lease the next job whose turn it is: the head
        of a session none of whose jobs is running, past its backoff. Waits up to
        ``wait`` seconds for one; None if there is none."""
        ...

    async def renew(self, lease: Lease) -> Lease:
        """Extend a held lease by ``lease_timeout`` from now, or raise LeaseLostError."""
        ...

    async def complete(self, lease: Lease, result: Any = None) -> Job:
        """Finish the job with a JSON-serializable ``result`` (LeaseLostError if not held)."""
        ...

    async def fail(
        self, lease: Lease, error: str, *, retry_after: float | None = None, retry: bool = True
    ) -> Job:
        """Record a failed attempt: queue it again after the backoff (at least
        ``retry_after``), or move it to the dead letters when ``retry`` is False or it
        has used ``max_attempts`` (LeaseLostError if not held)."""
        ...

    async def release(self, lease: Lease) -> Job:
        """Give a held job back untouched (the attempt does not count); it is next in line."""
        ...

    async def expire(self) -> list[Job]:
        """Fail every job whose lease ran out (``lease`` does this too); the jobs, as now."""
        ...

    async def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""
        ...

    async def dead_letters(self) -> list[Job]:
        """Jobs given up on, oldest first."""
        ...

    async def ping(self) -> None:
        """Raise if the queue's service cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def check_json(value: Any, what: str) -> Any:
    """``value`` if it survives a JSON round trip unchanged in kind, else InvalidArgumentError."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} must be JSON-serializable: {exc}") from None
    return value


def check_enqueue(session_id: Any, payload: Any, key: Any) -> None:
    """Validate ``enqueue`` arguments before anything is written."""
    validate_id(session_id)
    if not isinstance(payload, Mapping):
        raise InvalidArgumentError(f"job payload must be a mapping, got {type(payload).__name__}")
    check_json(dict(payload), "job payload")
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH):
        raise InvalidArgumentError(
            f"job key must be a non-empty string of at most {MAX_KEY_LENGTH} characters, "
            f"got {key!r}"
        )


class JobQueueBase(AsyncResource):
    """Optional base class of queue backends: ``async with`` support."""
