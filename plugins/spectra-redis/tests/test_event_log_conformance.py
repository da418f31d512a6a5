"""The redis event log passes the event log conformance suite and the reference-model
property test, against real Redis (a key prefix of each test's own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from spectra_core.testing import EventLogConformance, FakeClock, run_event_log_model
from spectra_core.testing.event_log_conformance import MakeEventLog
from spectra_redis import RedisEventLog


class TestRedisEventLog(EventLogConformance):
    @pytest.fixture
    async def make_log(
        self, redis_url: str, prefix: str, clock: FakeClock
    ) -> AsyncIterator[MakeEventLog]:
        made: list[RedisEventLog] = []

        def make(max_events: int = 10_000, retention: float = 300.0) -> RedisEventLog:
            log = RedisEventLog(
                redis_url,
                max_events=max_events,
                retention=retention,
                key_prefix=prefix,
                clock=clock,
            )
            made.append(log)
            return log

        yield make
        for log in made:
            await log.aclose()


def test_matches_the_reference_model(redis_url: str) -> None:
    import uuid

    import redis

    clock = FakeClock()
    prefix = f"spectra-test-{uuid.uuid4().hex[:12]}"

    def make(max_events: int = 10_000, retention: float = 300.0) -> RedisEventLog:
        return RedisEventLog(
            redis_url, max_events=max_events, retention=retention, key_prefix=prefix, clock=clock
        )

    try:
        run_event_log_model(make, clock)
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
