"""The redis job queue passes the job queue conformance suite against real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from spectra_core.testing import FakeClock, JobQueueConformance
from spectra_core.workers import JobRetry
from spectra_redis import RedisJobQueue


class TestRedisJobQueue(JobQueueConformance):
    @pytest.fixture
    def make_queue(self, redis_url: str, prefix: str) -> Any:
        def make(clock: FakeClock, *, lease_timeout: float, retry: JobRetry) -> RedisJobQueue:
            # a fresh prefix per queue: the state machine makes one per example
            return RedisJobQueue(
                redis_url,
                key_prefix=f"{prefix}:{uuid.uuid4().hex[:8]}",
                clock=clock,
                lease_timeout=lease_timeout,
                retry=retry,
                keep_finished=1000,
                poll_interval=0.05,
            )

        return make
