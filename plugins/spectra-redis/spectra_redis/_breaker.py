"""RedisCircuitBreaker: one breaker state shared by every process using the same name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from inspect import isawaitable
from typing import Any, Literal

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from spectra_core import CircuitOpenError, CircuitState
from spectra_core.backend import BreakerBase, admission_wait, timed_transition
from spectra_core.breaker import BreakerListener, BreakerMetrics, DefaultCircuitBreaker
from spectra_core.clock import Clock

from ._breaker_lua import BREAKER, FIELDS
from ._client import RedisUser

__all__ = ["RedisCircuitBreaker"]

log = structlog.get_logger("spectra_redis")
_STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)
_US = 1_000_000


class RedisCircuitBreaker(RedisUser, BreakerBase):
    """A circuit breaker whose state lives in Redis, shared by every process that uses
    the same ``name`` and ``key_prefix``: failures are counted across processes, the open
    state is seen by all, and half-open permits are exact across processes.

    The rules are :class:`~spectra_core.DefaultCircuitBreaker`'s (same settings), run by
    one Lua script per step: a call costs one script call to be admitted and one to
    record its outcome. Time is Redis ``TIME`` (``clock`` is for tests). ``state``,
    ``retry_after`` and ``metrics()`` are synchronous: they show the shared state as of
    this process's last script call, with time-based transitions applied; listeners
    hear the transitions this process sees. ``reset()`` applies locally at once and in
    Redis before this breaker's next call.

    When Redis cannot be asked, ``failure_mode`` decides: ``"open"`` lets calls through
    unrecorded (logged once per outage), ``"closed"`` fails them fast with
    CircuitOpenError (``retry_after = retry_interval``).
    """

    def __init__(
        self,
        redis: aioredis.Redis | str,
        failure_threshold: int = 5,
        reset_timeout_ms: float = 30_000,
        half_open_max_requests: int = 3,
        *,
        name: str = "breaker",
        key_prefix: str = "cb",
        failure_mode: Literal["open", "closed"] = "open",
        retry_interval: float = 1.0,
        socket_timeout: float = 5.0,
        clock: Clock | None = None,
        **settings: Any,
    ) -> None:
        # the same validation (and messages) as the in-process breaker
        self._rules = DefaultCircuitBreaker(
            failure_threshold, reset_timeout_ms, half_open_max_requests, name=name, **settings
        )
        if failure_mode not in ("open", "closed"):
            from spectra_core.errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"circuit breaker failure_mode must be 'open' or 'closed', got {failure_mode!r}"
            )
        super().__init__(redis, socket_timeout=socket_timeout)
        r = self._rules
        self._name = name
        self._key = f"{key_prefix}:{{{name}}}"
        self._excluded = r._excluded
        self._slow_s = r._slow
        self._reset_us = round(r._reset * _US)
        self._permits = r._ho_max
        self._mho_us = -1 if r._max_half_open is None else round(r._max_half_open * _US)
        self._min_calls: int = r._min_calls
        self._config = [
            r._failure_threshold,
            self._reset_us,
            r._ho_max,
            -1 if r._failure_rate is None else r._failure_rate,
            r._ring.maxlen,
            r._min_calls,
            0 if r._slow is None else 1,
            r._slow_rate,
            self._mho_us,
        ]
        self.failure_mode = failure_mode
        self.retry_interval = retry_interval
        self._clock = clock
        self._listeners: list[BreakerListener] = []
        self._mirror = dict.fromkeys(FIELDS, 0)
        self._seq = 0
        self._seen_epoch = 0
        self._offset_us = 0.0  # Redis time minus local monotonic time, at the last reply
        self._reset_pending = False
        self._resetting: asyncio.Task[None] | None = None
        self._down = False
        self._script: Any = None
        self.in_flight = 0  # script calls sent and not answered yet

    def __repr__(self) -> str:
        return f"<RedisCircuitBreaker {self._name!r} {self.url_shown}>"

    # --- time and the script ------------------------------------------------------------

    def _now_us(self) -> int:
        if self._clock is not None:
            return round(self._clock.monotonic() * _US)
        return round(time.monotonic() * _US + self._offset_us)

    async def _step(self, op: str, epoch: int = 0, slow: bool = False) -> list[int]:
        """Run one step of the shared state machine and take in the state it returns."""
        client = self.client()
        if self._script is None or self._script.registered_client is not client:
            self._script = client.register_script(BREAKER)
        reset_first = self._reset_pending
        self._reset_pending = False
        now = -1 if self._clock is None else self._now_us()
        self.in_flight += 1
        try:
            out = await self._script(
                keys=[self._key],
                args=[now, op, epoch, int(slow), int(reset_first), *self._config],
            )
        except BaseException:
            self._reset_pending = self._reset_pending or reset_first
            raise
        finally:
            self.in_flight -= 1
        values = [int(v) for v in out]
        if self._clock is None:
            self._offset_us = values[4] - time.monotonic() * _US
        if self._down:
            self._down = False
            log.warning("redis circuit breaker reachable again", breaker=self._name)
        if values[3] > self._seq:
            self._seq = values[3]
            self._mirror = dict(zip(FIELDS, values[5 : 5 + len(FIELDS)], strict=True))
            trans = values[5 + len(FIELDS) :]
            for i in range(0, len(trans), 3):
                self._heard(trans[i], trans[i + 1], trans[i + 2])
            self._heard(self._mirror["ep"], -1, self._mirror["st"])
        return values

    def _heard(self, epoch: int, old: int, new: int) -> None:
        """Tell the listeners about a transition not heard before (by epoch)."""
        if epoch <= self._seen_epoch:
            return
        previous = self._last_state if old < 0 else _STATES[old]
        self._seen_epoch = epoch
        current = _STATES[new]
        self._last_state = current
        if previous is current:
            return
        self._notify(previous, current)

    _last_state = CircuitState.CLOSED

    def _tick(self) -> None:
        """Apply the transitions that time alone causes, to this process's view."""
        m = self._mirror
        now = self._now_us()
        mho = None if self._mho_us < 0 else self._mho_us
        while due := timed_transition(_STATES[m["st"]], now, m["oa"], m["ha"], self._reset_us, mho):
            self._local_transition(_STATES.index(due[0]), due[1])

    def _local_transition(self, new: int, at: int) -> None:
        m = self._mirror
        old = m["st"]
        m.update(st=new, ep=m["ep"] + 1, cf=0, hi=0, hs=0, hsl=0, rl=0, rf=0, rs=0)
        if new == 1:
            m["oa"] = at
        elif new == 2:
            m["ha"] = at
        self._heard(m["ep"], old, new)

    def _wait_us(self) -> int:
        m = self._mirror
        return admission_wait(
            _STATES[m["st"]],
            self._now_us(),
            m["oa"],
            m["ha"],
            self._reset_us,
            None if self._mho_us < 0 else self._mho_us,
            m["hi"] + m["hs"] < self._permits,
        )

    # --- public API -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> CircuitState:
        self._tick()
        return _STATES[self._mirror["st"]]

    @property
    def retry_after(self) -> float:
        self._tick()
        return self._wait_us() / _US

    async def refresh(self) -> CircuitState:
        """Read the shared state now (one script call) and return it."""
        await self._step("read")
        return _STATES[self._mirror["st"]]

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` under the shared breaker (see the class docstring)."""
        if self._resetting is not None and not self._resetting.done():
            await self._resetting
        try:
            admitted, wait_us, epoch, *_ = await self._step("admit")
        except RedisError as exc:
            return await self._unshared(exc, fn, args, kwargs)
        if not admitted:
            state = _STATES[self._mirror["st"]]
            detail = (
                "is open"
                if state is CircuitState.OPEN
                else f"is half-open and its {self._permits} probe permits are taken"
            )
            retry_after = wait_us / _US
            raise CircuitOpenError(
                f"circuit breaker {self._name!r} {detail}: the call was not made; "
                f"retry in {retry_after:.3f}s",
                retry_after,
            )
        start = self._now_us() if self._slow_s is not None else 0
        try:
            result = fn(*args, **kwargs)
            if isawaitable(result):
                result = await result
        except Exception as exc:
            op = "excluded" if isinstance(exc, self._excluded) else "failure"
            await self._record(op, epoch, start)
            raise
        except BaseException:
            await asyncio.shield(self._record("cancelled", epoch, start))
            raise
        await self._record("success", epoch, start)
        return result

    async def _record(self, op: str, epoch: int, start: int) -> None:
        slow = self._slow_s is not None and (self._now_us() - start) / _US > self._slow_s
        try:
            await self._step(op, epoch, slow and op in ("success", "failure"))
        except RedisError as exc:
            self._warn_down(exc)

    async def _unshared(
        self, exc: RedisError, fn: Callable[..., Any], args: Any, kwargs: Any
    ) -> Any:
        """Redis is unreachable: fail open (call, unrecorded) or closed (fail fast)."""
        self._warn_down(exc)
        if self.failure_mode == "closed":
            raise CircuitOpenError(
                f"circuit breaker {self._name!r} cannot reach redis {self.url_shown} and "
                f"fails closed: the call was not made; retry in {self.retry_interval:.3f}s",
                self.retry_interval,
            ) from exc
        result = fn(*args, **kwargs)
        if isawaitable(result):
            result = await result
        return result

    def _warn_down(self, exc: RedisError) -> None:
        if not self._down:
            self._down = True
            log.warning(
                f"redis circuit breaker unreachable: failing {self.failure_mode}",
                breaker=self._name,
                url=self.url_shown,
                error=f"{type(exc).__name__}: {exc}",
            )

    def metrics(self) -> BreakerMetrics:
        state = self.state
        m = self._mirror
        n = m["rl"]
        rated = self._config[3] != -1 or self._slow_s is not None
        rated = rated and n >= self._min_calls
        return BreakerMetrics(
            state=state,
            successful_calls=m["ok"],
            failed_calls=m["fail"],
            slow_calls=m["slow"],
            excluded_calls=m["excl"],
            cancelled_calls=m["canc"],
            rejected_calls=m["rej"],
            consecutive_failures=m["cf"],
            buffered_calls=n,
            failure_rate=100.0 * m["rf"] / n if rated and self._config[3] != -1 else None,
            slow_call_rate=100.0 * m["rs"] / n if rated and self._slow_s is not None else None,
            half_open_in_flight=m["hi"],
            half_open_successes=m["hs"],
        )

    def reset(self) -> None:
        """Close the breaker and forget every recorded outcome (here at once, in Redis
        before this breaker's next call)."""
        m = self._mirror
        if m["st"] == 0:
            m.update(ep=m["ep"] + 1, cf=0, hi=0, hs=0, hsl=0, rl=0, rf=0, rs=0)
            self._seen_epoch = max(self._seen_epoch, m["ep"])
        else:
            self._local_transition(0, self._now_us())
        self._reset_pending = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._resetting = loop.create_task(self._apply_reset())

    async def _apply_reset(self) -> None:
        if self._reset_pending:
            try:
                await self._step("reset")
            except RedisError as exc:
                self._warn_down(exc)

    async def aclose(self) -> None:
        """Give the shared pool back."""
        if self._resetting is not None and not self._resetting.done():
            await self._resetting
        await self.release()
