"""RedisRateLimiter: an exact sliding window shared by every process, decided in Lua."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Coroutine, Sequence
from itertools import count
from typing import Any, Literal

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from spectra_core.clock import Clock
from spectra_core.errors import InvalidArgumentError
from spectra_core.rate_limit import RateLimiter, RateLimitResult, ReservationBase, combine_results
from spectra_core.rate_limit._types import check_cost

from ._client import RedisUser
from ._limiter_lua import DECIDE, RELEASE

__all__ = ["FailureMode", "RedisLimiterGroup", "RedisRateLimiter"]

log = structlog.get_logger("spectra_redis")

#: What a limiter decides when Redis cannot be asked: admit ("open") or reject ("closed").
FailureMode = Literal["open", "closed"]
_US = 1_000_000
_tokens = count()
# Admission tokens are unique per process: a random prefix (new in a forked child) and
# a counter; no system call per decision.
_process = os.urandom(6).hex()


def _new_process_prefix() -> None:
    global _process
    _process = os.urandom(6).hex()


os.register_at_fork(after_in_child=_new_process_prefix)


def _token() -> str:
    return f"{_process}.{next(_tokens):x}"


class _RedisReservation(ReservationBase):
    __slots__ = ("_group", "_keys", "_member", "_result")

    def __init__(
        self,
        result: RateLimitResult,
        group: RedisLimiterGroup | None,
        keys: list[str],
        member: str,
    ) -> None:
        self._result = result
        self._group = group
        self._keys = keys
        self._member = member

    @property
    def result(self) -> RateLimitResult:
        return self._result

    async def commit(self) -> None:
        self._group = None

    async def release(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            await group.release(self._keys, self._member)


#: Most requests decided by one script call (a script blocks Redis while it runs).
MAX_BATCH = 128


class _Request:
    __slots__ = ("arg", "future", "keys", "member")

    def __init__(
        self, keys: list[str], arg: str, member: str, future: asyncio.Future[_Reply]
    ) -> None:
        self.keys = keys
        self.arg = arg
        self.member = member
        self.future = future


#: What a decision comes back as: Redis' time and the request's reply, or the error.
_Reply = tuple[int, bytes] | RedisError


def _admitted(reply: _Reply) -> bool:
    return not isinstance(reply, RedisError) and reply[1][:1] == b"1"


class RedisLimiterGroup:
    """Redis limiters on one server: decides several keys in one atomic script call.

    Requests made in the same event-loop step are decided together, one after the other,
    by one script call (one round trip for many concurrent decisions; each is atomic on
    its own keys, exactly as if it were sent alone). ``batch=False`` (a cluster, whose
    keys live on different nodes) sends each request alone.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        clock: Clock | None,
        owner: RedisRateLimiter,
        *,
        batch: bool = True,
    ):
        self.client = client
        self.clock = clock
        self._owner = owner
        self.batches = batch
        self._decide = client.register_script(DECIDE)
        self._release = client.register_script(RELEASE)
        self._pending: list[_Request] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RedisLimiterGroup)
            and other.client is self.client
            and other.clock is self.clock
        )

    def __hash__(self) -> int:
        return hash((id(self.client), id(self.clock)))

    def _now(self) -> int:
        return -1 if self.clock is None else round(self.clock.monotonic() * _US)

    async def reserve_all(
        self, parts: Sequence[tuple[RateLimiter, str]], cost: int
    ) -> _RedisReservation:
        """Admit ``cost`` on every ``(limiter, key)`` or on none, in one round trip."""
        if type(cost) is not int or cost < 1:
            check_cost(cost)
        keys: list[str] = []
        token = _token()
        member = f"{token}:{cost}"
        arg = f"{len(parts)} {cost} {token}"
        for limiter, key in parts:
            assert isinstance(limiter, RedisRateLimiter)
            keys += limiter.keys(key)
            arg += limiter._spec
        reply: _Reply
        if self.batches:
            loop = asyncio.get_running_loop()
            request = _Request(keys, arg, member, loop.create_future())
            self._pending.append(request)
            if len(self._pending) == 1:  # the first of this step: runs after the others
                self._spawn(self._flush())
            try:
                reply = await request.future
            except asyncio.CancelledError:
                # decided, but the caller was cancelled before it could see the decision
                done = request.future.done() and not request.future.cancelled()
                if done and _admitted(request.future.result()):
                    self._spawn(self.release(keys, member))
                raise
        else:
            try:
                out = await self._decide(keys=keys, args=[self._now(), arg])
                reply = (int(out[0]), out[1])
            except RedisError as exc:
                reply = exc
        if isinstance(reply, RedisError):
            result = self._owner.on_redis_error(reply, "deciding")
            return _RedisReservation(result, None, [], "")
        if self._owner._down:
            self._owner._down = False
            log.warning("redis rate limiter reachable again", url=self._owner.url_shown)
        now, values = reply[0], [int(v) for v in reply[1].split()]
        wall = now / _US if self.clock is None else self.clock.time()
        results = [
            RateLimitResult(
                values[i + 2] == 0,
                values[i],
                wall + values[i + 1] / _US,
                math.inf if values[i + 2] < 0 else values[i + 2] / _US,
            )
            for i in range(1, len(values), 3)
        ]
        result = results[0] if len(results) == 1 else combine_results(results)
        if values[0] == 1:
            return _RedisReservation(result, self, keys, member)
        return _RedisReservation(result, None, [], "")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        """Send the requests made since the last flush, ``MAX_BATCH`` per script call."""
        pending, self._pending = self._pending, []
        pending = [r for r in pending if not r.future.done()]  # cancelled while waiting
        for i in range(MAX_BATCH, len(pending), MAX_BATCH):
            self._spawn(self._send(pending[i : i + MAX_BATCH]))
        if pending:
            await self._send(pending[:MAX_BATCH])

    async def settle(self) -> None:
        """Wait for the calls in flight (batches, releases of cancelled decisions)."""
        loop = asyncio.get_running_loop()
        while tasks := [t for t in self._tasks if t.get_loop() is loop]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, batch: list[_Request]) -> None:
        keys: list[str] = []
        args: list[Any] = [self._now()]
        for request in batch:
            keys += request.keys
            args.append(request.arg)
        try:
            out = await self._decide(keys=keys, args=args)
        except RedisError as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_result(exc)
            return
        except Exception as exc:  # not Redis': each caller raises it
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is closing)
            for request in batch:
                request.future.cancel()
            raise
        now = int(out[0])
        for request, reply in zip(batch, out[1:], strict=True):
            if not request.future.done():
                request.future.set_result((now, reply))
            elif _admitted((now, reply)):  # its caller was cancelled: give it back
                self._spawn(self.release(request.keys, request.member))

    async def release(self, keys: list[str], member: str) -> None:
        try:
            await self._release(keys=keys, args=[self._now(), member])
        except RedisError as exc:
            log.warning(
                "redis rate limiter could not give a reservation back; it expires with its window",
                url=self._owner.url_shown,
                error=str(exc),
            )


class RedisRateLimiter(RedisUser):
    """An exact sliding-window rate limiter whose state lives in Redis.

    The same promises as :class:`~spectra_core.rate_limit.LocalRateLimiter`, across every
    process using the same server, ``key_prefix`` and limits: a request of ``cost`` for
    ``key`` is admitted when the cost admitted in the last ``window_ms`` plus ``cost`` is
    at most ``requests_per_window + burst_allowance``; rejected requests consume
    nothing; ``retry_after`` is the true wait. Decisions are made by a Lua script, with
    the time from Redis ``TIME`` (never from the clients' clocks; ``clock`` is for
    tests); concurrent ones share a script call (see :class:`RedisLimiterGroup`). When
    Redis cannot be asked, ``failure_mode`` decides: ``"open"`` admits (logged once per
    outage), ``"closed"`` rejects with ``retry_after=retry_interval``.
    """

    def __init__(
        self,
        redis: aioredis.Redis | str,
        requests_per_window: int = 60,
        window_ms: float = 60_000,
        key_prefix: str = "rl",
        burst_allowance: int = 0,
        *,
        failure_mode: FailureMode = "open",
        retry_interval: float = 1.0,
        socket_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        _check_int("requests_per_window", requests_per_window, minimum=1)
        _check_int("burst_allowance", burst_allowance, minimum=0)
        if (
            isinstance(window_ms, bool)
            or not isinstance(window_ms, int | float)
            or not math.isfinite(window_ms)
            or window_ms < 0.001
        ):
            raise InvalidArgumentError(
                f"rate limiter window_ms must be a positive number of milliseconds "
                f"(at least 0.001), got {window_ms!r}; e.g. window_ms=60000 for one minute"
            )
        if failure_mode not in ("open", "closed"):
            raise InvalidArgumentError(
                f"rate limiter failure_mode must be 'open' or 'closed', got {failure_mode!r}"
            )
        if not key_prefix or not isinstance(key_prefix, str):
            raise InvalidArgumentError(f"key_prefix must be a non-empty string, got {key_prefix!r}")
        super().__init__(redis, socket_timeout=socket_timeout)
        self.requests_per_window = requests_per_window
        self.burst_allowance = burst_allowance
        self.window_ms = window_ms
        self.key_prefix = key_prefix
        self.failure_mode: FailureMode = failure_mode
        self.retry_interval = retry_interval
        self._window_us = round(window_ms * 1000)
        self._clock = clock
        self._group: RedisLimiterGroup | None = None
        self._down = False
        self._scope = f"{key_prefix}:{self.limit}/{window_ms:g}"
        self._spec = f" {self._window_us} {self.limit}"

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter({self.url_shown!r}, requests_per_window="
            f"{self.requests_per_window}, window_ms={self.window_ms!r}, "
            f"burst_allowance={self.burst_allowance}, key_prefix={self.key_prefix!r})"
        )

    @property
    def limit(self) -> int:
        """The most cost admitted in any window: ``requests_per_window + burst_allowance``."""
        return self.requests_per_window + self.burst_allowance

    def keys(self, key: str) -> list[str]:
        """The Redis keys of one limited key: its admissions log (which holds their sum)."""
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"rate limit key must be a non-empty string, got {key!r}")
        return [f"{self._scope}:{{{key}}}"]

    def _group_of(self, client: aioredis.Redis) -> RedisLimiterGroup:
        group = self._group
        if group is None or group.client is not client:
            # a cluster's keys may live on different nodes: no batches there
            batch = not isinstance(client, RedisCluster)
            group = self._group = RedisLimiterGroup(client, self._clock, self, batch=batch)
        return group

    def atomic_group(self) -> RedisLimiterGroup | None:
        """The group deciding keys of several limiters in one script (None on a cluster,
        whose keys may live on different nodes)."""
        group = self._group_of(self.client())
        return group if group.batches else None

    async def check_limit(self, key: str, cost: int = 1) -> RateLimitResult:
        """Admit and consume ``cost`` for ``key`` if the window allows it."""
        return (await self.reserve(key, cost)).result

    async def reserve(self, key: str, cost: int = 1) -> _RedisReservation:
        """Decide as :meth:`check_limit` does, holding the cost until committed or released."""
        return await self._group_of(self.client()).reserve_all(((self, key),), cost)

    def on_redis_error(self, exc: RedisError, action: str) -> RateLimitResult:
        """The decision when Redis failed: admit (fail open) or reject (fail closed)."""
        if not self._down:
            self._down = True
            log.warning(
                f"redis rate limiter unreachable: failing {self.failure_mode}",
                url=self.url_shown,
                action=action,
                error=f"{type(exc).__name__}: {exc}",
            )
        now = self._clock.time() if self._clock is not None else time.time()
        if self.failure_mode == "open":
            return RateLimitResult(True, self.limit, now, 0.0)
        return RateLimitResult(False, 0, now + self.retry_interval, self.retry_interval)

    async def aclose(self) -> None:
        """Wait for the calls in flight, then give the shared pool back."""
        if self._group is not None:
            await self._group.settle()
        await self.release()


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InvalidArgumentError(f"rate limiter {name} must be {what}, got {value!r}")
