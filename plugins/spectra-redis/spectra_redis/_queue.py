"""RedisJobQueue: the ``redis`` job queue, on Redis Streams with a consumer group.

Every step that checks and writes is one Lua script (see ``_queue_lua``); a lease is
the session's entry in the group's pending entries list, reclaimed with XAUTOCLAIM once
it has run out on the queue clock.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from spectra_core.clock import Clock, SystemClock
from spectra_core.errors import InvalidArgumentError
from spectra_core.workers import (
    Job,
    JobNotFound,
    JobQueueBase,
    JobRetry,
    JobStatus,
    Lease,
    LeaseLostError,
    check_enqueue,
    check_json,
)

from ._client import RedisUser
from ._queue_lua import COMPLETE, ENQUEUE, EXPIRE, FAIL, LEASE, RELEASE, RENEW

__all__ = ["RedisJobQueue"]

#: A lease's expiry on the queue clock, in ms, minus this is its entry's delivery time
#: (it must lie between 0 and the server's now: clocks after 2005, leases under 30 years).
SHIFT_MS = 2**40
#: Entries whose lease ends within this many ms are claimed and handed back if not due.
SLACK_MS = 50
_WAITS_KEPT = 1000


def _waits(retry: JobRetry) -> str:
    """The backoffs after attempt 1, 2, ..., trailing repeats dropped (Lua repeats the last)."""
    waits = [retry.backoff(n) for n in range(1, min(retry.max_attempts, _WAITS_KEPT) + 1)]
    while len(waits) > 1 and waits[-1] == waits[-2]:
        waits.pop()
    return ",".join(repr(w) for w in waits)


def _text(value: bytes | None) -> str | None:
    return None if value is None or value == b"" else value.decode()


def _job(fields: Any) -> Job:
    """A Job from its hash (HGETALL as a dict, or as the flat list a script returns)."""
    if isinstance(fields, Mapping):
        f = {k.decode(): v for k, v in fields.items()}
    else:
        f = {fields[i].decode(): fields[i + 1] for i in range(0, len(fields), 2)}
    expires, finished, result = (_text(f.get(k)) for k in ("expires_at", "finished_at", "result"))
    return Job(
        id=f["id"].decode(),
        session_id=f["session"].decode(),
        payload=json.loads(f["payload"]),
        key=_text(f.get("key")),
        status=JobStatus(f["status"].decode()),
        attempts=int(f["attempts"]),
        enqueued_at=float(f["enqueued_at"]),
        available_at=float(f["available_at"]),
        worker_id=_text(f.get("worker")),
        lease_expires_at=None if expires is None else float(expires),
        result=None if result is None else json.loads(result),
        error=_text(f.get("error")),
        finished_at=None if finished is None else float(finished),
    )


class RedisJobQueue(JobQueueBase):
    """A :class:`~spectra_core.workers.JobQueue` shared by every process using the same
    Redis and ``key_prefix``.

    ``poll_interval``: the longest a waiting ``lease`` blocks before it looks again
    (for expired leases; enqueues and finished jobs wake it at once).
    """

    def __init__(
        self,
        redis: aioredis.Redis | str,
        *,
        key_prefix: str = "spectra:queue",
        lease_timeout: float = 30.0,
        retry: JobRetry | None = None,
        clock: Clock | None = None,
        keep_finished: int = 10_000,
        poll_interval: float = 1.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if not isinstance(key_prefix, str) or not key_prefix:
            raise InvalidArgumentError(f"key_prefix must be a non-empty string, got {key_prefix!r}")
        if lease_timeout <= 0:
            raise InvalidArgumentError(f"lease_timeout must be positive, got {lease_timeout}")
        if keep_finished < 1:
            raise InvalidArgumentError(f"keep_finished must be >= 1, got {keep_finished}")
        if poll_interval <= 0:
            raise InvalidArgumentError(f"poll_interval must be positive, got {poll_interval}")
        self._user = RedisUser(redis, socket_timeout=socket_timeout)
        self.key_prefix = key_prefix
        self.lease_timeout = float(lease_timeout)
        self.retry = retry or JobRetry()
        self.clock: Clock = clock or SystemClock()
        self.keep_finished = keep_finished
        # a blocking read must end well before the socket timeout
        self.poll_interval = min(float(poll_interval), self._user.socket_timeout / 2)
        self._waits = _waits(self.retry)
        self._scripts: dict[str, AsyncScript] = {}
        self._client: aioredis.Redis | None = None

    # --- plumbing ---------------------------------------------------------------------

    async def _ready(self) -> aioredis.Redis:
        client = self._user.client()
        if client is not self._client:
            try:
                await client.xgroup_create(
                    f"{self.key_prefix}:ready", "workers", id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._scripts = {
                name: client.register_script(body)
                for name, body in {
                    "enqueue": ENQUEUE,
                    "lease": LEASE,
                    "expire": EXPIRE,
                    "renew": RENEW,
                    "complete": COMPLETE,
                    "fail": FAIL,
                    "release": RELEASE,
                }.items()
            }
            self._client = client
        return client

    async def _call(self, script: str, action: str, *args: Any) -> Any:
        try:
            await self._ready()
            common: list[Any] = [
                self.key_prefix,
                repr(float(self.clock.time())),
                self.retry.max_attempts,
                self.keep_finished,
                self._waits,
            ]
            return await self._scripts[script](args=[*common, *args])
        except RedisError as exc:
            raise self._user.error(exc, action) from exc

    def _held(self, lease: Lease, reply: Any) -> Job:
        if reply[0] == 0:
            status = reply[1].decode()
            raise LeaseLostError(
                f"worker {lease.worker_id!r} no longer holds job {lease.job.id} "
                f"(it is {status}, its lease having run out or ended); nothing was written"
            )
        return _job(reply[1])

    # --- producing --------------------------------------------------------------------

    async def enqueue(
        self, session_id: str, payload: Mapping[str, Any], *, key: str | None = None
    ) -> Job:
        check_enqueue(session_id, payload, key)
        data = dict(payload)
        created, flat = await self._call(
            "enqueue",
            f"enqueue of a job of session {session_id!r}",
            uuid.uuid4().hex,
            session_id,
            json.dumps(data, allow_nan=False),
            key or "",
        )
        job = _job(flat)
        if not created and (job.session_id != session_id or dict(job.payload) != data):
            raise InvalidArgumentError(
                f"job key {key!r} was already used for job {job.id} of session "
                f"{job.session_id!r} with another payload; use a new key"
            )
        return job

    # --- consuming --------------------------------------------------------------------

    async def lease(self, worker_id: str, *, wait: float = 0.0) -> Lease | None:
        if not isinstance(worker_id, str) or not worker_id:
            raise InvalidArgumentError(f"worker_id must be a non-empty string, got {worker_id!r}")
        deadline = self.clock.monotonic() + max(wait, 0.0)
        while True:
            token = f"{os.getpid():x}.{uuid.uuid4().hex}"
            flat, last, next_due = await self._call(
                "lease",
                f"lease by worker {worker_id!r}",
                worker_id,
                token,
                repr(self.lease_timeout),
                SHIFT_MS,
                SLACK_MS,
            )
            if flat:
                job = _job(flat)
                assert job.lease_expires_at is not None
                return Lease(
                    job=job, token=token, worker_id=worker_id, expires_at=job.lease_expires_at
                )
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return None
            block = min(remaining, self.poll_interval)
            if next_due:
                block = min(block, max(float(next_due) - self.clock.time(), 0.001))
            await self._wait(last.decode() or "0-0", block)

    async def _wait(self, last: str, seconds: float) -> None:
        """Until an entry after ``last`` is added to ``ready``, or ``seconds`` pass."""
        try:
            await self._user.client().xread(
                {f"{self.key_prefix}:ready": last}, count=1, block=max(int(seconds * 1000), 1)
            )
        except RedisError as exc:
            raise self._user.error(exc, "waiting for a job") from exc

    async def renew(self, lease: Lease) -> Lease:
        reply = await self._call(
            "renew",
            f"renew of job {lease.job.id}",
            lease.job.id,
            lease.token,
            repr(self.lease_timeout),
            SHIFT_MS,
        )
        job = self._held(lease, reply)
        assert job.lease_expires_at is not None
        return Lease(
            job=job, token=lease.token, worker_id=lease.worker_id, expires_at=job.lease_expires_at
        )

    async def complete(self, lease: Lease, result: Any = None) -> Job:
        check_json(result, f"result of job {lease.job.id}")
        reply = await self._call(
            "complete",
            f"completion of job {lease.job.id}",
            lease.job.id,
            lease.token,
            json.dumps(result, allow_nan=False),
        )
        return self._held(lease, reply)

    async def fail(
        self, lease: Lease, error: str, *, retry_after: float | None = None, retry: bool = True
    ) -> Job:
        reply = await self._call(
            "fail",
            f"failure of job {lease.job.id}",
            lease.job.id,
            lease.token,
            str(error),
            repr(float(retry_after or 0.0)),
            "1" if retry else "0",
        )
        return self._held(lease, reply)

    async def release(self, lease: Lease) -> Job:
        reply = await self._call(
            "release", f"release of job {lease.job.id}", lease.job.id, lease.token
        )
        return self._held(lease, reply)

    async def expire(self) -> list[Job]:
        reply = await self._call("expire", "expiry of leases", SHIFT_MS, SLACK_MS)
        return [_job(flat) for flat in reply]

    # --- reading ----------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        try:
            flat = await self._user.client().hgetall(f"{self.key_prefix}:job:{job_id}")
        except RedisError as exc:
            raise self._user.error(exc, f"reading job {job_id!r}") from exc
        if not flat:
            raise JobNotFound(job_id)
        return _job(flat)

    async def dead_letters(self) -> list[Job]:
        client = self._user.client()
        try:
            entries: Any = await client.xrange(f"{self.key_prefix}:dead")
            async with client.pipeline(transaction=False) as pipe:
                for _, fields in entries:
                    pipe.hgetall(f"{self.key_prefix}:job:{fields[b'job'].decode()}")
                hashes = await pipe.execute()
        except RedisError as exc:
            raise self._user.error(exc, "reading the dead letters") from exc
        return [_job(flat) for flat in hashes if flat]

    async def ping(self) -> None:
        try:
            await self._user.client().ping()
        except RedisError as exc:
            raise self._user.error(exc, "PING") from exc

    async def aclose(self) -> None:
        self._client = None
        await self._user.release()
