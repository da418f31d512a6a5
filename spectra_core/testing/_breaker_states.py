"""Circuit breaker conformance: the states and what moves a breaker between them
(closed, open, half-open probes, excluded exceptions, cancellation, hung probes, stale
outcomes)."""

from __future__ import annotations

import asyncio

import pytest

from ..breaker import CircuitBreaker
from ..errors import CircuitOpenError, SpectraError
from ._breaker_base import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Boom,
    BreakerConformanceBase,
    Gate,
    Ignored,
    MakeBreaker,
    _fail,
    _ok,
    _trip,
)
from .clock import FakeClock

__all__ = ["BreakerStatesConformance"]


class BreakerStatesConformance(BreakerConformanceBase):
    """The transitions of the three states (part of :class:`CircuitBreakerConformance`)."""

    # --- closed -----------------------------------------------------------------------

    async def test_closed_passes_calls_through(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(name="payments")
        seen: list[object] = []

        async def fn(a: int, *, b: int) -> int:
            seen.append((a, b))
            return a + b

        assert breaker.name == "payments"
        assert breaker.state is CLOSED
        assert breaker.retry_after == 0.0
        assert await breaker.call(fn, 1, b=2) == 3
        assert seen == [(1, 2)]
        assert isinstance(breaker, CircuitBreaker)

    async def test_plain_callables_are_supported(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=1)
        assert await breaker.call(lambda x: x * 2, 21) == 42

        def broken() -> None:
            raise Boom("sync failure")

        with pytest.raises(Boom):
            await breaker.call(broken)
        assert breaker.state is OPEN

    async def test_opens_after_consecutive_failures(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=3)
        await _trip(breaker, 2)
        assert breaker.state is CLOSED
        with pytest.raises(Boom, match="service down"):
            await breaker.call(_fail)
        assert breaker.state is OPEN

    async def test_a_success_resets_the_consecutive_count(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=3)
        for _ in range(5):
            await _trip(breaker, 2)
            await breaker.call(_ok)
        assert breaker.state is CLOSED
        assert breaker.metrics().consecutive_failures == 0

    async def test_calls_in_flight_do_not_block_each_other(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker()
        gate = Gate()
        slow = asyncio.create_task(breaker.call(gate))
        await self.settle()
        assert gate.entered == 1
        # No lock is held across the protected call: another call completes meanwhile.
        assert await breaker.call(_ok, "fast") == "fast"
        gate.succeed()
        assert await slow == "done"

    # --- open -------------------------------------------------------------------------

    async def test_open_fails_fast_without_calling(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=2, reset_timeout_ms=2000)
        await _trip(breaker, 2)
        calls = 0

        async def fn() -> None:
            nonlocal calls
            calls += 1

        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(fn)
        assert isinstance(info.value, SpectraError)
        assert info.value.retry_after == pytest.approx(2.0)
        clock.advance(0.5)
        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(fn)
        assert info.value.retry_after == pytest.approx(1.5)
        assert breaker.retry_after == pytest.approx(1.5)
        assert calls == 0
        assert breaker.metrics().rejected_calls == 2

    async def test_half_open_after_the_reset_timeout(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=1, reset_timeout_ms=1000)
        await _trip(breaker, 1)
        clock.advance(0.75)
        assert breaker.state is OPEN
        clock.advance(0.25)
        assert breaker.state is HALF_OPEN
        assert breaker.retry_after == 0.0

    # --- half-open --------------------------------------------------------------------

    @pytest.mark.parametrize("permits", [1, 3])
    async def test_half_open_admits_exactly_the_permitted_concurrent_probes(
        self, make_breaker: MakeBreaker, clock: FakeClock, permits: int
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=permits)
        gate = Gate()
        tasks = [asyncio.create_task(breaker.call(gate)) for _ in range(50)]
        await self.settle()
        assert gate.entered == permits
        rejected = [t for t in tasks if t.done()]
        assert len(rejected) == 50 - permits
        for task in rejected:
            assert isinstance(task.exception(), CircuitOpenError)
        assert breaker.state is HALF_OPEN
        gate.succeed()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results.count("done") == permits
        assert gate.entered == permits
        assert breaker.state is CLOSED

    async def test_closes_after_the_permitted_number_of_successful_probes(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=3)
        await breaker.call(_ok)
        await breaker.call(_ok)
        assert breaker.state is HALF_OPEN
        await breaker.call(_ok)
        assert breaker.state is CLOSED
        # Closed again: a fresh failure count.
        await _trip(breaker, 1)
        assert breaker.state is OPEN

    async def test_a_failing_probe_reopens(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker, clock, half_open_max_requests=3, reset_timeout_ms=1000
        )
        gates = [Gate() for _ in range(3)]
        tasks = [asyncio.create_task(breaker.call(g)) for g in gates]
        await self.settle()
        gates[0].fail()
        with pytest.raises(Boom):
            await tasks[0]
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(1.0)
        # The other probes finishing later belong to the abandoned trial.
        gates[1].succeed()
        gates[2].succeed()
        assert await asyncio.gather(*tasks[1:]) == ["done", "done"]
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)

    async def test_rejected_in_half_open_when_permits_are_taken(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker, clock, half_open_max_requests=1, max_half_open_ms=4000
        )
        gate = Gate()
        probe = asyncio.create_task(breaker.call(gate))
        await self.settle()
        clock.advance(1)
        with pytest.raises(CircuitOpenError) as info:
            await breaker.call(_ok)
        assert 0 < info.value.retry_after <= 3.0
        assert breaker.retry_after > 0
        gate.succeed()
        await probe
        assert breaker.state is CLOSED
        assert breaker.retry_after == 0.0

    # --- excluded exceptions and cancellation -----------------------------------------

    async def test_excluded_exceptions_count_as_neither(self, make_breaker: MakeBreaker) -> None:
        breaker = make_breaker(failure_threshold=2, excluded_exceptions=(Ignored,))

        async def ignored() -> None:
            raise Ignored("not the service's fault")

        for _ in range(10):
            with pytest.raises(Ignored):
                await breaker.call(ignored)
        assert breaker.state is CLOSED
        await _trip(breaker, 1)
        # An excluded exception is not a success: the failure count is not reset.
        with pytest.raises(Ignored):
            await breaker.call(ignored)
        await _trip(breaker, 1)
        assert breaker.state is OPEN
        assert breaker.metrics().excluded_calls == 11

    async def test_an_excluded_exception_gives_the_probe_permit_back(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker, clock, half_open_max_requests=1, excluded_exceptions=(Ignored,)
        )
        gate = Gate()
        probe = asyncio.create_task(breaker.call(gate))
        await self.settle()
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        gate.fail(Ignored("excluded"))
        with pytest.raises(Ignored):
            await probe
        assert breaker.state is HALF_OPEN
        assert await breaker.call(_ok, "probe 2") == "probe 2"
        assert breaker.state is CLOSED

    async def test_a_cancelled_probe_gives_its_permit_back(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=2)
        gates = [Gate(), Gate()]
        probes = [asyncio.create_task(breaker.call(g)) for g in gates]
        await self.settle()
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        probes[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await probes[0]
        assert breaker.state is HALF_OPEN
        gate = Gate()
        replacement = asyncio.create_task(breaker.call(gate))
        await self.settle()
        assert gate.entered == 1
        gates[1].succeed()
        gate.succeed()
        assert list(await asyncio.gather(probes[1], replacement)) == ["done", "done"]
        assert breaker.state is CLOSED
        assert breaker.metrics().cancelled_calls == 1

    async def test_cancellation_when_closed_counts_as_neither(
        self, make_breaker: MakeBreaker
    ) -> None:
        breaker = make_breaker(failure_threshold=2)
        await _trip(breaker, 1)
        task = asyncio.create_task(breaker.call(Gate()))
        await self.settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.metrics().consecutive_failures == 1
        await _trip(breaker, 1)
        assert breaker.state is OPEN

    # --- hung probes and stale outcomes ------------------------------------------------

    async def test_hung_probes_cannot_hold_half_open_past_its_maximum(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker,
            clock,
            half_open_max_requests=2,
            reset_timeout_ms=1000,
            max_half_open_ms=500,
        )
        hung = [Gate(), Gate()]
        stuck = [asyncio.create_task(breaker.call(g)) for g in hung]
        await self.settle()
        clock.advance(0.25)
        assert breaker.state is HALF_OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        clock.advance(0.25)
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(1.0)
        clock.advance(1)
        assert breaker.state is HALF_OPEN
        fresh = Gate()
        probes = [asyncio.create_task(breaker.call(fresh)) for _ in range(2)]
        await self.settle()
        assert fresh.entered == 2
        # The hung probes finally return: they belong to the earlier trial and count for nothing.
        for gate in hung:
            gate.succeed()
        await asyncio.gather(*stuck)
        assert breaker.state is HALF_OPEN
        assert breaker.metrics().half_open_successes == 0
        fresh.succeed()
        await asyncio.gather(*probes)
        assert breaker.state is CLOSED

    async def test_an_unobserved_half_open_past_its_maximum_reopens_from_the_deadline(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(
            make_breaker,
            clock,
            half_open_max_requests=1,
            reset_timeout_ms=1000,
            max_half_open_ms=500,
        )
        hung = asyncio.create_task(breaker.call(Gate()))
        await self.settle()
        # Nobody looks for a long time: the breaker reopened 0.5 s in and is half-open again.
        clock.advance(10)
        assert await breaker.call(_ok) == "ok"
        assert breaker.state is CLOSED
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung

    async def test_without_a_maximum_hung_probes_keep_their_permits(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = await self._half_open(make_breaker, clock, half_open_max_requests=1)
        gate = Gate()
        probe = asyncio.create_task(breaker.call(gate))
        await self.settle()
        clock.advance(3600)
        assert breaker.state is HALF_OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call(_ok)
        gate.succeed()
        await probe
        assert breaker.state is CLOSED

    async def test_outcomes_of_calls_admitted_before_a_state_change_are_ignored(
        self, make_breaker: MakeBreaker, clock: FakeClock
    ) -> None:
        breaker = make_breaker(failure_threshold=1, reset_timeout_ms=1000)
        straggler = Gate()
        late = asyncio.create_task(breaker.call(straggler))
        await self.settle()
        await _trip(breaker, 1)
        clock.advance(1)
        assert breaker.state is HALF_OPEN
        # A call admitted while closed fails now: it is not a probe and must not reopen.
        straggler.fail()
        with pytest.raises(Boom):
            await late
        assert breaker.state is HALF_OPEN
