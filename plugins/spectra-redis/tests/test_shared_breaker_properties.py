"""Several RedisCircuitBreaker instances sharing one state, against the reference model
of tests/test_breaker_properties.py (hypothesis, step by step, real Redis)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from _redis_env import REQUIRED, URL, WHY_NOT
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from spectra_core import CircuitOpenError, CircuitState
from spectra_core.testing import FakeClock
from spectra_redis import RedisCircuitBreaker

_spec = importlib.util.spec_from_file_location(
    "_breaker_reference", Path(__file__).parents[3] / "tests" / "test_breaker_properties.py"
)
assert _spec is not None and _spec.loader is not None
ref = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ref
_spec.loader.exec_module(ref)

INSTANCES = 3
HALF_OPEN, CLOSED = CircuitState.HALF_OPEN, CircuitState.CLOSED


@attrs.define
class InFlight:
    task: asyncio.Task[Any]
    gate: asyncio.Future[None]
    epoch: int
    started: float


class SharedBreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.in_flight: list[InFlight] = []
        self.entered = 0
        self.breakers: list[RedisCircuitBreaker] = []

    @initialize(config=ref.configs)
    def setup(self, config: Any) -> None:
        self.config = config
        self.model = ref.Model(config)
        prefix = f"spectra-test-{uuid.uuid4().hex[:12]}"
        self.breakers = [
            RedisCircuitBreaker(URL, key_prefix=prefix, clock=self.clock, **config.kwargs())
            for _ in range(INSTANCES)
        ]

    def teardown(self) -> None:
        for f in self.in_flight:
            f.task.cancel()
        if self.in_flight:
            self._run(asyncio.gather(*(f.task for f in self.in_flight), return_exceptions=True))
        self._run(self._close())
        self.loop.close()

    async def _close(self) -> None:
        if self.breakers:
            await self.breakers[0].client().delete(self.breakers[0]._key)
        for b in self.breakers:
            await b.aclose()

    def _run(self, aw: Any) -> Any:
        return self.loop.run_until_complete(aw)

    def _settle(self) -> None:
        for _ in range(3):
            self._run(asyncio.sleep(0))
        while any(b.in_flight for b in self.breakers):
            self._run(asyncio.sleep(0))
        for _ in range(3):
            self._run(asyncio.sleep(0))

    # --- rules ------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(which=st.integers(0, INSTANCES - 1), outcome=st.sampled_from(ref.OUTCOMES))
    def call(self, which: int, outcome: str) -> None:
        breaker = self.breakers[which]
        now = self.clock.monotonic()
        expected_wait = self.model.retry_after(now)
        epoch = self.model.admit(now)
        entered = False

        async def fn() -> str:
            nonlocal entered
            entered = True
            if outcome == "failure":
                raise ref.Boom
            if outcome == "excluded":
                raise ref.Ignored
            if outcome == "slow":
                self.clock.advance(ref.SLOW_CALL)
            return "ok"

        async def attempt() -> object:
            try:
                return await breaker.call(fn)
            except Exception as exc:
                return exc

        result = self._run(attempt())
        if epoch is None:
            assert not entered, "the function ran while the shared breaker rejects calls"
            assert isinstance(result, CircuitOpenError)
            assert result.retry_after == pytest.approx(expected_wait, abs=1e-6)
            return
        assert entered
        expected: type[object] = {"failure": ref.Boom, "excluded": ref.Ignored}.get(outcome, str)
        assert isinstance(result, expected)
        duration = ref.SLOW_CALL if outcome == "slow" else 0.0
        ending = "success" if outcome == "slow" else outcome
        self.model.finish(epoch, ending, duration, now + duration)

    @rule(which=st.integers(0, INSTANCES - 1))
    def start(self, which: int) -> None:
        now = self.clock.monotonic()
        epoch = self.model.admit(now)
        gate: asyncio.Future[None] = self.loop.create_future()
        before = self.entered

        async def held() -> None:
            self.entered += 1
            await gate

        task = self.loop.create_task(self.breakers[which].call(held))
        self._settle()
        if epoch is None:
            assert self.entered == before, "the function ran while the shared breaker rejects"
            assert task.done() and isinstance(task.exception(), CircuitOpenError)
            return
        assert self.entered == before + 1 and not task.done()
        self.in_flight.append(InFlight(task, gate, epoch, now))

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 20), ending=st.sampled_from(ref.ENDINGS))
    def finish(self, index: int, ending: str) -> None:
        f = self.in_flight.pop(index % len(self.in_flight))
        if ending == "cancel":
            f.task.cancel()
        elif ending == "success":
            f.gate.set_result(None)
        else:
            f.gate.set_exception(ref.Boom() if ending == "failure" else ref.Ignored())
        self._run(asyncio.wait([f.task]))
        if ending == "cancel":
            assert f.task.cancelled()
        elif ending == "success":
            assert f.task.result() is None
        else:
            error = ref.Boom if ending == "failure" else ref.Ignored
            assert isinstance(f.task.exception(), error)
        now = self.clock.monotonic()
        self.model.finish(f.epoch, ending, now - f.started, now)

    @rule(which=st.integers(0, INSTANCES - 1))
    def reset(self, which: int) -> None:
        async def reset() -> None:  # from async code, as an application would
            self.breakers[which].reset()

        self._run(reset())
        self._settle()
        if self.model.state is CLOSED:
            self.model.epoch += 1
            self.model._clear()
        else:
            self.model.go(CLOSED, self.clock.monotonic())

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def every_instance_sees_the_model_state(self) -> None:
        if not self.breakers:
            return
        now = self.clock.monotonic()
        self.model.tick(now)
        for b in self.breakers:
            assert self._run(b.refresh()) is self.model.state
            assert b.retry_after == pytest.approx(self.model.retry_after(now), abs=1e-6)
            metrics = b.metrics()
            assert metrics.consecutive_failures == self.model.consecutive
            if self.model.state is HALF_OPEN:
                assert metrics.half_open_in_flight == self.model.in_flight
                assert self.model.in_flight <= self.config.permits
            else:
                assert metrics.half_open_in_flight == 0


SharedBreakerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SPECTRA_BREAKER_EXAMPLES", "40")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestSharedBreakerMachine(SharedBreakerMachine.TestCase):
    def setUp(self) -> None:
        if WHY_NOT is not None:
            if REQUIRED:
                pytest.fail(f"SPECTRA_REQUIRE_REDIS=1 but {WHY_NOT}")
            pytest.skip(WHY_NOT)
