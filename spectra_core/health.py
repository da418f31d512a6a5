"""HealthProbe: Kubernetes-style health from the engine's lifecycle and named checks.

::

    probe = HealthProbe()
    probe.register_check("redis", redis_ping, timeout=2.0)
    probe.register_check("search", search_ping, critical=False)
    report = await probe.health(engine.lifecycle, engine.active_session_count)
    report.status  # "healthy" | "degraded" | "unhealthy"

Checks run concurrently, each under its timeout (read from an injectable clock). A check
passes when it returns ``None``, ``True``, ``"ok"`` or a mapping whose ``status`` is
``"ok"``; it fails when it raises, times out, or returns anything else. The status is
``unhealthy`` when the engine is not running or draining, or a critical check fails;
``degraded`` when a non-critical check fails or the engine is draining; else ``healthy``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from .clock import Clock, SystemClock
from .durations import Duration
from .errors import ConfigError, InvalidArgumentError

__all__ = [
    "CheckResult",
    "HealthCheckOptions",
    "HealthProbe",
    "HealthStatus",
    "ProbeReport",
    "build_health_probe",
]

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
#: A check: no argument, sync or async.
CheckFn = Callable[[], Any]
_OK_WORDS = frozenset({"ok", "healthy", "up", "pass"})


@attrs.frozen
class CheckResult:
    """One check's outcome: ``ok``, ``error`` (raised or said so) or ``timeout``."""

    status: Literal["ok", "error", "timeout"]
    critical: bool
    latency_ms: float
    error: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "critical": self.critical,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.error is not None:
            out["error"] = self.error
        if self.details:
            out["details"] = dict(self.details)
        return out


@attrs.frozen
class ProbeReport:
    """What :meth:`HealthProbe.health` answers (``to_dict()`` for a JSON body)."""

    status: HealthStatus
    lifecycle: str
    active_sessions: int
    checks: Mapping[str, CheckResult]

    @property
    def ready(self) -> bool:
        """Whether to route traffic here (``/readyz``): healthy or degraded but running."""
        return self.status != "unhealthy" and self.lifecycle == "running"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "lifecycle": self.lifecycle,
            "active_sessions": self.active_sessions,
            "checks": {name: c.to_dict() for name, c in self.checks.items()},
        }


@attrs.frozen
class _Check:
    fn: CheckFn
    timeout: float
    critical: bool


class HealthProbe:
    """Named health checks, run together on each :meth:`health` call."""

    def __init__(self, *, clock: Clock | None = None, default_timeout: float = 5.0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.default_timeout = _positive_timeout(default_timeout, "default_timeout")
        self._checks: dict[str, _Check] = {}

    @classmethod
    def of_pings(cls, pings: Mapping[str, Any], *, clock: Clock | None = None) -> HealthProbe:
        """A probe with one critical ``ping()`` check per backend (``None`` ones skipped)."""
        probe = cls(clock=clock)
        for name, backend in pings.items():
            if backend is not None:
                probe.register_ping(name, backend)
        return probe

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    def register_check(
        self,
        name: str,
        fn: CheckFn,
        timeout: float | None = None,
        critical: bool = True,
    ) -> None:
        """Add a check; ``timeout`` seconds (default ``default_timeout``)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"health check name must be a non-empty string: {name!r}")
        if not callable(fn):
            raise InvalidArgumentError(f"health check {name!r}: {fn!r} is not callable")
        if name in self._checks:
            raise InvalidArgumentError(
                f"health check {name!r} is already registered; unregister_check it first"
            )
        seconds = self.default_timeout if timeout is None else timeout
        self._checks[name] = _Check(fn, _positive_timeout(seconds, f"{name!r} timeout"), critical)

    def register_ping(
        self, name: str, backend: Any, timeout: float | None = None, critical: bool = True
    ) -> None:
        """Add a check calling ``backend.ping()`` (a store, an event log, a client)."""
        ping = getattr(backend, "ping", None)
        if ping is None:
            raise InvalidArgumentError(f"health check {name!r}: {backend!r} has no ping()")
        self.register_check(name, ping, timeout, critical)

    def unregister_check(self, name: str) -> None:
        if self._checks.pop(name, None) is None:
            raise InvalidArgumentError(f"no health check named {name!r}")

    async def run_checks(self) -> dict[str, CheckResult]:
        """Every check, concurrently, each under its timeout."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def health(self, lifecycle: str = "running", active_sessions: int = 0) -> ProbeReport:
        """The report for an engine in ``lifecycle`` with ``active_sessions`` runs."""
        checks = await self.run_checks()
        life = str(lifecycle)
        failed = [c for c in checks.values() if c.status != "ok"]
        status: HealthStatus
        if life not in ("running", "draining") or any(c.critical for c in failed):
            status = "unhealthy"
        elif failed or life == "draining":
            status = "degraded"
        else:
            status = "healthy"
        return ProbeReport(status, life, active_sessions, checks)

    async def _run(self, check: _Check) -> CheckResult:
        start = self.clock.monotonic()
        task = asyncio.ensure_future(_call(check.fn))
        timer = asyncio.ensure_future(self.clock.sleep(check.timeout))
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        latency = (self.clock.monotonic() - start) * 1000.0
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return CheckResult("timeout", check.critical, latency, f"no answer in {check.timeout}s")
        exc = task.exception()
        if exc is not None:
            return CheckResult("error", check.critical, latency, f"{type(exc).__name__}: {exc}")
        return _judge(task.result(), check.critical, latency)


async def _call(fn: CheckFn) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


def _judge(value: Any, critical: bool, latency: float) -> CheckResult:
    if value is None or value is True:
        return CheckResult("ok", critical, latency)
    if isinstance(value, str):
        if value.lower() in _OK_WORDS:
            return CheckResult("ok", critical, latency)
        return CheckResult("error", critical, latency, value)
    if isinstance(value, Mapping):
        status = str(value.get("status", "")).lower()
        details = {k: v for k, v in value.items() if k != "status"}
        if status in _OK_WORDS:
            return CheckResult("ok", critical, latency, details=details)
        error = str(value.get("error") or f"status {value.get('status')!r}")
        return CheckResult("error", critical, latency, error, details)
    return CheckResult("error", critical, latency, f"check returned {value!r}")


def _positive_timeout(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"health check {what} must be a positive number, got {value!r}")
    return float(value)


@attrs.frozen
class HealthCheckOptions:
    """Options every ``[[health]]`` entry takes; a check backend's options subclass it.

    ``name`` (default: the backend name) keys the check in the report, ``timeout`` bounds
    it, ``critical = false`` makes its failure degrade rather than fail the health.
    """

    name: str = ""
    timeout: Duration = attrs.field(default=Duration(5.0))
    critical: bool = True


def build_health_probe(
    config: Any,
    registry: Any,
    *,
    clock: Clock | None = None,
    pings: Mapping[str, Any] | None = None,
) -> HealthProbe:
    """A probe with a ``ping`` check per backend in ``pings`` (e.g. ``{"store": store}``,
    critical) and one check per ``[[health]]`` entry of ``config``, built by its plugin's
    ``spectra_register_health_checks`` factory."""
    from .config import _create

    probe = HealthProbe(clock=clock)
    for name, backend in (pings or {}).items():
        probe.register_ping(name, backend)
    errors = []
    for part in config.health:
        check = _create(part, registry, config.source)
        options = part.options
        name = getattr(options, "name", "") or part.backend
        try:
            probe.register_check(
                name,
                check,
                getattr(options, "timeout", None),
                getattr(options, "critical", True),
            )
        except InvalidArgumentError as exc:
            errors.append(f"{config.source}: {part.path}: {exc}")
    if errors:
        raise ConfigError(errors)
    return probe
