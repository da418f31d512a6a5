"""HealthProbe: concurrent checks under clock-driven timeouts, and [[health]] entries."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import attrs
import pytest

from spectra_core import ConfigError, InvalidArgumentError, hookimpl
from spectra_core.config import parse_config
from spectra_core.health import HealthCheckOptions, HealthProbe, build_health_probe
from spectra_core.plugins import PluginRegistry, PluginSource, load_plugins
from spectra_core.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probe(clock: FakeClock) -> HealthProbe:
    return HealthProbe(clock=clock)


async def ok() -> dict[str, str]:
    return {"status": "ok"}


async def broken() -> None:
    raise ConnectionError("connection refused")


async def until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0)


async def test_all_checks_pass_when_running(probe: HealthProbe) -> None:
    probe.register_check("redis", ok)
    probe.register_check("db", lambda: None)
    report = await probe.health("running", 3)
    assert report.status == "healthy" and report.ready
    assert report.to_dict() == {
        "status": "healthy",
        "lifecycle": "running",
        "active_sessions": 3,
        "checks": {
            "redis": {"status": "ok", "critical": True, "latency_ms": 0.0},
            "db": {"status": "ok", "critical": True, "latency_ms": 0.0},
        },
    }


async def test_no_checks_follow_the_lifecycle(probe: HealthProbe) -> None:
    assert (await probe.health("running", 0)).status == "healthy"
    assert (await probe.health("draining", 0)).status == "degraded"
    assert not (await probe.health("draining", 0)).ready
    assert (await probe.health("idle", 0)).status == "unhealthy"
    assert (await probe.health("stopped", 0)).status == "unhealthy"


async def test_a_failing_critical_check_is_unhealthy(probe: HealthProbe) -> None:
    probe.register_check("redis", broken)
    probe.register_check("db", ok)
    report = await probe.health("running", 0)
    assert report.status == "unhealthy" and not report.ready
    assert report.checks["redis"].status == "error"
    assert report.checks["redis"].error == "ConnectionError: connection refused"
    assert report.checks["db"].status == "ok"


async def test_a_failing_optional_check_degrades(probe: HealthProbe) -> None:
    probe.register_check("search", broken, critical=False)
    report = await probe.health("running", 0)
    assert report.status == "degraded" and report.ready
    assert report.to_dict()["checks"]["search"]["critical"] is False


@pytest.mark.parametrize(
    ("value", "status", "error"),
    [
        (None, "ok", None),
        (True, "ok", None),
        ("ok", "ok", None),
        ("UP", "ok", None),
        ({"status": "ok", "version": "7.2"}, "ok", None),
        (False, "error", "check returned False"),
        ("disk full", "error", "disk full"),
        ({"status": "error", "error": "replica lag"}, "error", "replica lag"),
        ({"status": "down"}, "error", "status 'down'"),
        (0, "error", "check returned 0"),
    ],
)
async def test_what_a_check_returns_decides_it(
    probe: HealthProbe, value: object, status: str, error: str | None
) -> None:
    probe.register_check("c", lambda: value)
    result = (await probe.health()).checks["c"]
    assert (result.status, result.error) == (status, error)


async def test_details_of_a_mapping_are_kept(probe: HealthProbe) -> None:
    probe.register_check("redis", lambda: {"status": "ok", "version": "7.2"})
    assert (await probe.health()).to_dict()["checks"]["redis"]["details"] == {"version": "7.2"}


async def test_checks_run_concurrently_and_time_out_by_the_clock(
    probe: HealthProbe, clock: FakeClock
) -> None:
    started: list[str] = []
    cancelled: list[str] = []

    def waiting(name: str, seconds: float | None) -> Any:
        async def check() -> None:
            started.append(name)
            try:
                if seconds is None:
                    await asyncio.Event().wait()  # never answers
                else:
                    await clock.sleep(seconds)
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return check

    probe.register_check("slow", waiting("slow", 0.25), timeout=1.0)
    probe.register_check("hung", waiting("hung", None), timeout=2.0, critical=False)
    report_task = asyncio.ensure_future(probe.health("running", 0))
    await until(lambda: len(started) == 2)  # both began before either ended
    clock.advance(0.25)
    await until(lambda: clock.sleepers == 1)  # "slow" answered: only the timer of "hung" is left
    assert not report_task.done()
    clock.advance(1.75)
    report = await report_task
    assert report.checks["slow"].status == "ok"
    assert report.checks["slow"].latency_ms == pytest.approx(250.0)
    assert report.checks["hung"].status == "timeout"
    assert report.checks["hung"].error == "no answer in 2.0s"
    assert report.checks["hung"].latency_ms == pytest.approx(2000.0)
    assert cancelled == ["hung"]
    assert report.status == "degraded"


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("", ok), "non-empty string"),
        (("x", "not callable"), "not callable"),
        (("x", ok, 0), "positive number"),
        (("x", ok, -1.0), "positive number"),
        (("x", ok, True), "positive number"),
    ],
)
def test_bad_registrations_are_refused(
    probe: HealthProbe, args: tuple[Any, ...], what: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=what):
        probe.register_check(*args)


def test_names_are_unique_until_unregistered(probe: HealthProbe) -> None:
    probe.register_check("redis", ok)
    with pytest.raises(InvalidArgumentError, match="already registered"):
        probe.register_check("redis", ok)
    probe.unregister_check("redis")
    probe.register_check("redis", ok)
    assert probe.names == ["redis"]
    with pytest.raises(InvalidArgumentError, match="no health check named 'nope'"):
        probe.unregister_check("nope")


async def test_register_ping_calls_the_backends_ping(probe: HealthProbe) -> None:
    class Store:
        async def ping(self) -> None:
            raise OSError("disk gone")

    probe.register_ping("store", Store())
    assert (await probe.health()).checks["store"].error == "OSError: disk gone"
    with pytest.raises(InvalidArgumentError, match="has no ping"):
        probe.register_ping("x", object())


# --- [[health]] entries -------------------------------------------------------------


@attrs.frozen
class UrlCheckOptions(HealthCheckOptions):
    answer: str = "ok"


@pytest.fixture
def registry() -> PluginRegistry:
    mod = types.ModuleType("acme_health")

    @hookimpl
    def spectra_register_health_checks(register):  # type: ignore[no-untyped-def]
        register("answer", lambda o: lambda: o.answer, UrlCheckOptions)

    mod.spectra_register_health_checks = spectra_register_health_checks  # type: ignore[attr-defined]
    return load_plugins([PluginSource.of("acme", mod, "acme-health")], disabled=[])


async def test_health_entries_become_checks(registry: PluginRegistry, clock: FakeClock) -> None:
    config = parse_config(
        {
            "health": [
                {"backend": "answer"},
                {"backend": "answer", "name": "cache", "answer": "cold", "critical": False},
                {"backend": "answer", "name": "slow", "timeout": "250ms"},
            ]
        },
        "spectra.toml",
        registry,
    )

    class Store:
        async def ping(self) -> None:
            return None

    probe = build_health_probe(config, registry, clock=clock, pings={"store": Store()})
    assert probe.names == ["store", "answer", "cache", "slow"]
    report = await probe.health("running", 0)
    assert report.status == "degraded"
    assert report.checks["cache"].to_dict() == {
        "status": "error",
        "critical": False,
        "latency_ms": 0.0,
        "error": "cold",
    }
    assert probe._checks["slow"].timeout == 0.25


def test_health_entry_errors_name_the_file_and_path(registry: PluginRegistry) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"health": [{"backend": "answer", "timeout": "soon"}]}, "s.toml", registry)
    assert info.value.errors[0].startswith("s.toml: $.health[0].timeout:")
    config = parse_config(
        {"health": [{"backend": "answer"}, {"backend": "answer"}]}, "s.toml", registry
    )
    with pytest.raises(ConfigError, match=r"s.toml: \$.health\[1\]: .*already registered"):
        build_health_probe(config, registry)
    zero = parse_config({"health": [{"backend": "answer", "timeout": 0}]}, "s.toml", registry)
    with pytest.raises(ConfigError, match=r"\$.health\[0\]: .*positive number"):
        build_health_probe(zero, registry)
