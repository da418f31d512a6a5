"""Rule-based state machines: the limiters against small reference models, with the clock
advanced between operations and invariants checked after every step."""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from spectra_core import CompositeRateLimiter, LocalRateLimiter, RateLimitRequest, RateLimitResult
from spectra_core.rate_limit import Reservation, ReservationBase
from spectra_core.testing import FakeClock

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
KEYS = st.sampled_from(["a", "b"])
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a limiter call to completion without an event loop. The in-memory limiters
    never suspend, so every decision is atomic under asyncio; this fails if one does."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise AssertionError("a limiter call suspended")


@attrs.define
class Admission:
    t_ms: int
    cost: int


class WindowModel:
    """The reference: the list of admissions per key, rescanned in full for each decision."""

    def __init__(self, capacity: int, window_ms: int) -> None:
        self.capacity = capacity
        self.window_ms = window_ms
        self.admitted: dict[str, list[Admission]] = {}

    def live(self, key: str, now_ms: int) -> list[Admission]:
        return [a for a in self.admitted.get(key, []) if a.t_ms + self.window_ms > now_ms]

    def decide(self, key: str, cost: int, now_ms: int) -> tuple[bool, int, float, float | None]:
        """(allowed, remaining, retry_after seconds, reset in ms from now or None)."""
        live = self.live(key, now_ms)
        used = sum(a.cost for a in live)
        busy = [a.t_ms + self.window_ms - now_ms for a in live if a.cost]
        reset_in = max(busy) if busy else 0
        if cost > self.capacity:
            return False, self.capacity - used, math.inf, reset_in
        if used + cost <= self.capacity:
            return True, self.capacity - used - cost, 0.0, self.window_ms
        need, freed = used + cost - self.capacity, 0
        for a in live:
            freed += a.cost
            if freed >= need:
                return (
                    False,
                    self.capacity - used,
                    (a.t_ms + self.window_ms - now_ms) / 1000,
                    (reset_in),
                )
        raise AssertionError("unreachable")

    def admit(self, key: str, cost: int, now_ms: int) -> Admission:
        a = Admission(now_ms, cost)
        self.admitted.setdefault(key, []).append(a)
        return a


def assert_matches(
    result: RateLimitResult,
    expected: tuple[bool, int, float, float | None],
    clock: FakeClock,
    wall0: float,
    now_ms: int,
) -> None:
    allowed, remaining, retry_after, reset_in = expected
    assert (result.allowed, result.remaining) == (allowed, remaining), (result, expected)
    if math.isinf(retry_after):
        assert result.retry_after == math.inf
    else:
        assert result.retry_after == pytest.approx(retry_after, abs=1e-9)
    assert reset_in is not None
    assert result.reset_at == pytest.approx(wall0 + (now_ms + reset_in) / 1000, abs=1e-6)
    del clock


class LocalLimiterMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    @initialize(
        rpw=st.integers(1, 4),
        burst=st.integers(0, 2),
        window_ms=st.sampled_from([1, 10, 1000]),
    )
    def setup(self, rpw: int, burst: int, window_ms: int) -> None:
        self.clock = FakeClock()
        self.wall0 = self.clock.time()
        self.now_ms = 0
        self.window_ms = window_ms
        self.limiter = LocalRateLimiter(rpw, window_ms, burst, clock=self.clock)
        self.model = WindowModel(rpw + burst, window_ms)
        # Every admission that still counts (released reservations removed), per key.
        self.history: dict[str, list[Admission]] = {"a": [], "b": []}

    def _decide(self, key: str, cost: int, *, reserve: bool) -> tuple[Any, Admission | None]:
        expected = self.model.decide(key, cost, self.now_ms)
        if reserve:
            reservation = run(self.limiter.reserve(key, cost))
            result = reservation.result
        else:
            reservation, result = None, run(self.limiter.check_limit(key, cost))
        assert_matches(result, expected, self.clock, self.wall0, self.now_ms)
        admission = None
        if result.allowed:
            admission = self.model.admit(key, cost, self.now_ms)
            self.history[key].append(admission)
        return reservation, admission

    @rule(key=KEYS, cost=st.integers(1, 7))
    def check(self, key: str, cost: int) -> None:
        self._decide(key, cost, reserve=False)

    @rule(target=reservations, key=KEYS, cost=st.integers(1, 4))
    def reserve(self, key: str, cost: int) -> tuple[str, Reservation, Admission | None]:
        reservation, admission = self._decide(key, cost, reserve=True)
        return key, reservation, admission

    @rule(item=consumes(reservations))
    def commit(self, item: tuple[str, Reservation, Admission | None]) -> None:
        run(item[1].commit())

    @rule(item=consumes(reservations))
    def release(self, item: tuple[str, Reservation, Admission | None]) -> None:
        key, reservation, admission = item
        run(reservation.release())
        if admission is not None and admission.t_ms + self.window_ms > self.now_ms:
            admission.cost = 0  # given back as if never admitted
            self.history[key].remove(admission)

    @rule(ms=st.one_of(st.integers(0, 1500), st.sampled_from([1, 9, 10, 999, 1000])))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms / 1000)
        self.now_ms += ms

    @rule()
    def purge(self) -> None:
        self.limiter.purge()

    @invariant()
    def no_window_admits_more_than_the_limit(self) -> None:
        if not hasattr(self, "history"):
            return
        for admissions in self.history.values():
            for first in admissions:
                in_window = [
                    a.cost for a in admissions if first.t_ms <= a.t_ms < first.t_ms + self.window_ms
                ]
                assert sum(in_window) <= self.model.capacity

    @invariant()
    def memory_holds_only_keys_with_admissions_in_the_window(self) -> None:
        if hasattr(self, "limiter"):
            assert self.limiter.key_count <= 2


TestLocalLimiterMachine = LocalLimiterMachine.TestCase
TestLocalLimiterMachine.settings = settings(SETTINGS, max_examples=200, stateful_step_count=50)


# --- composite against scripted limiters ------------------------------------------------


class ScriptedReservation(ReservationBase):
    __slots__ = ("_result", "cost", "limiter", "settled")

    def __init__(self, limiter: ScriptedLimiter, result: RateLimitResult, cost: int) -> None:
        self.limiter, self._result, self.cost, self.settled = limiter, result, cost, False

    @property
    def result(self) -> RateLimitResult:
        return self._result

    async def commit(self) -> None:
        if not self.settled and self._result.allowed:
            self.limiter.held -= self.cost
            self.limiter.committed += self.cost
        self.settled = True

    async def release(self) -> None:
        if not self.settled and self._result.allowed:
            self.limiter.held -= self.cost
        self.settled = True


class ScriptedLimiter:
    """A limiter whose next decision the state machine draws; it keeps a ledger."""

    def __init__(self) -> None:
        self.next: RateLimitResult = RateLimitResult(True, 0, 0.0, 0.0)
        self.held = 0
        self.committed = 0
        self.keys: list[str] = []

    async def check_limit(self, key: str, cost: int = 1) -> RateLimitResult:
        raise AssertionError("a composite must use reserve")

    async def reserve(self, key: str, cost: int = 1) -> ScriptedReservation:
        self.keys.append(key)
        if self.next.allowed:
            self.held += cost
        return ScriptedReservation(self, self.next, cost)


DECISION = st.builds(
    RateLimitResult,
    allowed=st.booleans(),
    remaining=st.integers(0, 20),
    reset_at=st.floats(0, 1000),
    retry_after=st.floats(0.001, 100),
)


class CompositeScriptedMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.limiters = [ScriptedLimiter() for _ in range(3)]
        self.composite = CompositeRateLimiter(
            [
                {"limiter": self.limiters[0], "key": "tenant"},
                {"limiter": self.limiters[1], "key": "user"},
                {"limiter": self.limiters[2], "key": "provider"},
            ]
        )

    @rule(
        decisions=st.lists(DECISION, min_size=3, max_size=3),
        cost=st.integers(1, 5),
        user=st.sampled_from(["u1", "u2"]),
    )
    def check(self, decisions: list[RateLimitResult], cost: int, user: str) -> None:
        before = [lim.committed for lim in self.limiters]
        for lim, d in zip(self.limiters, decisions, strict=True):
            lim.next = attrs.evolve(d, retry_after=0.0) if d.allowed else d
        req = RateLimitRequest(user, tenant_id="t", provider="p")
        result = run(self.composite.check_limit(req, cost))
        allowed = all(d.allowed for d in decisions)
        assert result.allowed == allowed
        assert result.remaining == min(d.remaining for d in decisions)
        assert result.reset_at == max(d.reset_at for d in decisions)
        if allowed:
            assert result.retry_after == 0.0
            assert [lim.committed for lim in self.limiters] == [b + cost for b in before]
        else:
            rejecting = [d.retry_after for d in decisions if not d.allowed]
            assert result.retry_after == max(rejecting)
            assert [lim.committed for lim in self.limiters] == before
        assert [lim.keys[-1] for lim in self.limiters] == ["t", user, "p"]

    @invariant()
    def nothing_stays_held(self) -> None:
        assert [lim.held for lim in self.limiters] == [0, 0, 0]


TestCompositeScriptedMachine = CompositeScriptedMachine.TestCase
TestCompositeScriptedMachine.settings = SETTINGS


# --- composite of real limiters against per-limiter models -------------------------------


class CompositeLocalMachine(RuleBasedStateMachine):
    @initialize(
        tenant_cap=st.integers(1, 6),
        user_cap=st.integers(1, 3),
        window_ms=st.sampled_from([10, 1000]),
    )
    def setup(self, tenant_cap: int, user_cap: int, window_ms: int) -> None:
        self.clock = FakeClock()
        self.wall0 = self.clock.time()
        self.now_ms = 0
        self.tenant = LocalRateLimiter(tenant_cap, window_ms, clock=self.clock)
        self.user = LocalRateLimiter(user_cap, window_ms, clock=self.clock)
        self.models = [WindowModel(tenant_cap, window_ms), WindowModel(user_cap, window_ms)]
        self.composite = CompositeRateLimiter(
            [{"limiter": self.tenant, "key": "tenant"}, {"limiter": self.user, "key": "user"}]
        )

    @rule(
        user=st.sampled_from(["u1", "u2", "u3"]),
        tenant=st.sampled_from(["t1", "t2"]),
        cost=st.integers(1, 4),
    )
    def check(self, user: str, tenant: str, cost: int) -> None:
        keys = [tenant, user]
        decisions = [m.decide(k, cost, self.now_ms) for m, k in zip(self.models, keys, strict=True)]
        result = run(self.composite.check_limit(RateLimitRequest(user, tenant_id=tenant), cost))
        allowed = all(d[0] for d in decisions)
        assert result.allowed == allowed
        if allowed:
            for m, k in zip(self.models, keys, strict=True):
                m.admit(k, cost, self.now_ms)
            assert result.remaining == min(d[1] for d in decisions)
        else:
            # Rejected: every limiter's state is as the model says, i.e. unchanged.
            expected = max(d[2] for d in decisions if not d[0])
            assert result.retry_after == pytest.approx(expected, abs=1e-9)
            assert result.remaining == min(d[1] for d in decisions)

    @rule(ms=st.one_of(st.integers(0, 1200), st.sampled_from([1, 10, 1000])))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms / 1000)
        self.now_ms += ms

    @invariant()
    def each_limiter_matches_its_model(self) -> None:
        if not hasattr(self, "models"):
            return
        for limiter, model, keys in (
            (self.tenant, self.models[0], ["t1", "t2"]),
            (self.user, self.models[1], ["u1", "u2", "u3"]),
        ):
            for key in keys:
                # A reservation released at once is a probe that changes nothing.
                probe = run(limiter.reserve(key, 1))
                expected = model.decide(key, 1, self.now_ms)
                run(probe.release())
                assert (probe.result.allowed, probe.result.remaining) == expected[:2]


TestCompositeLocalMachine = CompositeLocalMachine.TestCase
TestCompositeLocalMachine.settings = settings(SETTINGS, max_examples=120)
