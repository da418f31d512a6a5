"""LocalRateLimiter: an exact sliding window log per key, in process memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque

from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError
from ._types import RateLimitResult, ReservationBase, check_cost

__all__ = ["DEFAULT_MAX_KEYS", "LocalRateLimiter"]

#: Default bound on the number of keys a :class:`LocalRateLimiter` tracks at once.
DEFAULT_MAX_KEYS = 100_000

_NS = 1_000_000_000
_INF = math.inf


class _Key:
    """The admissions of one key still inside the window: ``[expiry_ns, cost]`` entries in
    expiry order (admissions at the same instant share one entry) and their total cost."""

    __slots__ = ("entries", "used")

    def __init__(self) -> None:
        self.entries: deque[list[int]] = deque()
        self.used = 0


class _LocalReservation(ReservationBase):
    __slots__ = ("_cost", "_entry", "_key", "_limiter", "_result", "_state")

    def __init__(
        self,
        result: RateLimitResult,
        limiter: LocalRateLimiter | None,
        key: str,
        state: _Key | None,
        entry: list[int] | None,
        cost: int,
    ) -> None:
        self._result = result
        self._limiter = limiter
        self._key = key
        self._state = state
        self._entry = entry
        self._cost = cost

    @property
    def result(self) -> RateLimitResult:
        return self._result

    async def commit(self) -> None:
        self._limiter = self._state = self._entry = None

    async def release(self) -> None:
        limiter, state, entry = self._limiter, self._state, self._entry
        self._limiter = self._state = self._entry = None
        if limiter is not None and state is not None and entry is not None:
            limiter._release(self._key, state, entry, self._cost)


class LocalRateLimiter:
    """An exact sliding-window rate limiter for one process.

    A request of ``cost`` for ``key`` is admitted when the cost admitted for that key in
    the last ``window_ms`` milliseconds plus ``cost`` is at most
    ``requests_per_window + burst_allowance``; so no window of ``window_ms`` ever admits
    more than that. An admission at time ``t`` stops counting at ``t + window`` exactly.
    Rejected requests consume nothing. Time is the injected clock's ``monotonic()``
    (``reset_at`` is reported on its wall-clock ``time()``).

    Memory is bounded: a key whose admissions have all left the window is forgotten, and at
    most ``max_keys`` keys are tracked at once. When ``max_keys`` keys all have admissions
    inside the window, a request for a new key is rejected (``remaining=0``, ``retry_after``
    until the oldest key goes idle) rather than forgetting a key and over-admitting it.

    Each decision is O(1) amortised (a deque of admissions with a running total per key;
    idle keys leave an insertion-ordered dict from the front).
    """

    def __init__(
        self,
        requests_per_window: int,
        window_ms: float,
        burst_allowance: int = 0,
        *,
        clock: Clock | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        _check_int("requests_per_window", requests_per_window, minimum=1)
        _check_int("burst_allowance", burst_allowance, minimum=0)
        _check_int("max_keys", max_keys, minimum=1)
        if (
            isinstance(window_ms, bool)
            or not isinstance(window_ms, int | float)
            or not math.isfinite(window_ms)
            or window_ms <= 0
        ):
            raise InvalidArgumentError(
                f"rate limiter window_ms must be a positive number of milliseconds, "
                f"got {window_ms!r}; e.g. window_ms=60000 for one minute"
            )
        self._window_ns = round(window_ms * 1_000_000)
        if self._window_ns < 1:
            raise InvalidArgumentError(
                f"rate limiter window_ms={window_ms!r} is shorter than one nanosecond"
            )
        self.requests_per_window = requests_per_window
        self.burst_allowance = burst_allowance
        self.window_ms = window_ms
        self.max_keys = max_keys
        self._capacity = requests_per_window + burst_allowance
        self._clock: Clock = clock if clock is not None else SystemClock()
        if type(self._clock) is SystemClock:  # skip a Python-level call per reading
            self._monotonic, self._time = time.monotonic, time.time
        else:
            self._monotonic, self._time = self._clock.monotonic, self._clock.time
        self._last_state: _Key | None = None
        self._last_entry: list[int] | None = None
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        # No key can go idle before this instant (ns); checked once per admission.
        self._next_idle = 0

    def __repr__(self) -> str:
        return (
            f"LocalRateLimiter(requests_per_window={self.requests_per_window}, "
            f"window_ms={self.window_ms!r}, burst_allowance={self.burst_allowance}, "
            f"max_keys={self.max_keys})"
        )

    @property
    def limit(self) -> int:
        """The most cost admitted in any window: ``requests_per_window + burst_allowance``."""
        return self._capacity

    @property
    def key_count(self) -> int:
        """How many keys are tracked now (idle ones may linger until the next admission)."""
        return len(self._keys)

    async def reserve(self, key: str, cost: int = 1) -> _LocalReservation:
        """Decide as :meth:`check_limit` does, holding the cost until committed or released."""
        result = await self.check_limit(key, cost)
        if not result.allowed:
            return _LocalReservation(result, None, key, None, None, cost)
        return _LocalReservation(result, self, key, self._last_state, self._last_entry, cost)

    def purge(self) -> int:
        """Forget every idle key now; returns how many were forgotten."""
        now = int(self._monotonic() * _NS + 0.5)
        idle = [k for k, s in self._keys.items() if not s.entries or s.entries[-1][0] <= now]
        for k in idle:
            del self._keys[k]
        return len(idle)

    # --- internals ------------------------------------------------------------------

    async def check_limit(self, key: str, cost: int = 1) -> RateLimitResult:
        """Admit and consume ``cost`` for ``key`` if the window allows it."""
        # Never awaits: the decision is atomic under asyncio. An admission's key state and
        # entry are left in _last_state/_last_entry for reserve(), which reads them at once.
        if type(cost) is not int or cost < 1:
            check_cost(cost)
        raw = self._monotonic() * _NS
        now = int(raw + 0.5)
        keys = self._keys
        state = keys.get(key)
        if state is not None:
            entries = state.entries
            used = state.used
            if entries and entries[0][0] <= now:
                while entries and entries[0][0] <= now:
                    used -= entries.popleft()[1]
                state.used = used
        else:
            used = 0
        capacity = self._capacity
        if used + cost > capacity:
            return self._reject(state, used, cost, raw)
        if now >= self._next_idle:
            self._evict_idle(now)
            if state is not None and keys.get(key) is not state:
                state = None  # it was idle (used == 0) and has just been forgotten
        if state is None:
            if len(keys) >= self.max_keys:
                self._evict_idle(now)
                if len(keys) >= self.max_keys:
                    return self._reject_full(raw)
            state = keys[key] = _Key()
            entries = state.entries
        else:
            keys.move_to_end(key)
        expiry = now + self._window_ns
        if entries and entries[-1][0] == expiry:
            entry = entries[-1]
            entry[1] += cost
        else:
            entry = [expiry, cost]
            entries.append(entry)
        state.used = used + cost
        self._last_state = state
        self._last_entry = entry
        return RateLimitResult(
            True, capacity - used - cost, self._time() + (expiry - raw) / _NS, 0.0
        )

    def _reject(self, state: _Key | None, used: int, cost: int, raw: float) -> RateLimitResult:
        capacity = self._capacity
        wall = self._time()
        if state is None or not used:
            return RateLimitResult(False, capacity - used, wall, _INF)
        entries = state.entries
        while not entries[0][1]:  # released reservations at the front hold nothing
            entries.popleft()
        last = entries[-1]
        if not last[1]:
            last = next(e for e in reversed(entries) if e[1])
        reset_at = wall + (last[0] - raw) / _NS
        if cost > capacity:
            return RateLimitResult(False, capacity - used, reset_at, _INF)
        need = used + cost - capacity
        first = entries[0]
        if first[1] < need:
            freed = 0
            for first in entries:
                freed += first[1]
                if freed >= need:
                    break
        return RateLimitResult(False, capacity - used, reset_at, (first[0] - raw) / _NS)

    def _reject_full(self, raw: float) -> RateLimitResult:
        oldest = next(iter(self._keys.values()))
        expiry = oldest.entries[-1][0]
        return RateLimitResult(False, 0, self._time(), (expiry - raw) / _NS)

    def _evict_idle(self, now: int) -> None:
        keys = self._keys
        while keys:
            state = keys[next(iter(keys))]
            entries = state.entries
            if entries and entries[-1][0] > now:
                self._next_idle = entries[-1][0]
                return
            keys.popitem(last=False)
        self._next_idle = now + self._window_ns

    def _release(self, key: str, state: _Key, entry: list[int], cost: int) -> None:
        now = int(self._monotonic() * _NS + 0.5)
        if entry[0] <= now:
            return  # already out of the window: nothing is held any more
        entry[1] -= cost
        state.used -= cost
        if entry[1]:
            return
        entries = state.entries
        if entries[-1] is entry:
            entries.pop()
        elif entries[0] is entry:
            entries.popleft()
        if not entries and self._keys.get(key) is state:
            del self._keys[key]


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InvalidArgumentError(f"rate limiter {name} must be {what}, got {value!r}")
