from collections.abc import Callable

import pytest

from spectra_core import LocalRateLimiter, RateLimiter
from spectra_core.durations import Duration
from spectra_core.plugins import BackendKind, load_plugins, module_source
from spectra_core.testing import FakeClock, RateLimiterConformance
from spectra_memory import MemoryLimiterOptions, create_memory_limiter
from spectra_memory import _plugin as memory_plugin


class TestMemoryRateLimiter(RateLimiterConformance):
    @pytest.fixture
    def make_limiter(self, clock: FakeClock) -> Callable[..., RateLimiter]:
        def make(
            requests_per_window: int, window_ms: float, burst_allowance: int = 0
        ) -> RateLimiter:
            options = MemoryLimiterOptions(
                requests_per_window=requests_per_window,
                window=Duration(window_ms / 1000),
                burst_allowance=burst_allowance,
            )
            return create_memory_limiter(options, clock=clock)

        return make


def test_memory_rate_limiter_is_registered() -> None:
    registry = load_plugins([module_source(memory_plugin, "spectra-memory")])
    backend = registry.get(BackendKind.RATE_LIMITER, "memory")
    assert backend.options is MemoryLimiterOptions
    assert backend.distribution == "spectra-memory"
    options = MemoryLimiterOptions(
        requests_per_window=15, window=Duration(60.0), burst_allowance=2, max_keys=10
    )
    limiter = registry.create(BackendKind.RATE_LIMITER, "memory", options)
    assert isinstance(limiter, LocalRateLimiter)
    assert (limiter.limit, limiter.window_ms, limiter.max_keys) == (17, 60_000, 10)


def test_options_defaults() -> None:
    options = MemoryLimiterOptions(requests_per_window=5, window=Duration(1.0))
    assert (options.burst_allowance, options.max_keys) == (0, 100_000)


def test_bad_options_fail_when_the_limiter_is_built() -> None:
    with pytest.raises(ValueError, match="requests_per_window"):
        create_memory_limiter(MemoryLimiterOptions(requests_per_window=0, window=Duration(1.0)))
    with pytest.raises(ValueError, match="window"):
        create_memory_limiter(MemoryLimiterOptions(requests_per_window=1, window=Duration(0.0)))
