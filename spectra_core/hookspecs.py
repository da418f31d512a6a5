"""The hooks a spectra plugin implements (pluggy, project name ``spectra``).

Each hook is a registration hook: it receives a :class:`Register` callback and calls it
once per backend it provides, with the name that configuration files use, a factory
taking an options instance, and the attrs class of those options::

    from spectra_core import hookimpl

    @hookimpl
    def spectra_register_session_stores(register):
        register("memory", InMemorySessionStore.from_options, MemoryStoreOptions)

A plugin module is found through the ``spectra`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

__all__ = [
    "Register",
    "hookimpl",
    "hookspec",
    "spectra_register_authenticators",
    "spectra_register_circuit_breakers",
    "spectra_register_commands",
    "spectra_register_event_logs",
    "spectra_register_health_checks",
    "spectra_register_job_queues",
    "spectra_register_model_providers",
    "spectra_register_rate_limiters",
    "spectra_register_session_stores",
    "spectra_register_transports",
]

hookspec = pluggy.HookspecMarker("spectra")
hookimpl = pluggy.HookimplMarker("spectra")


class Register(Protocol):
    """The callback a registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[[Any], Any],
        options: type[Any] | None = None,
        *,
        description: str = "",
    ) -> None: ...


@hookspec
def spectra_register_session_stores(register: Register) -> None:
    """Register session store backends (``[store] backend = "..."``)."""


@hookspec
def spectra_register_rate_limiters(register: Register) -> None:
    """Register rate limiter backends (``[[limiter]] backend = "..."``)."""


@hookspec
def spectra_register_circuit_breakers(register: Register) -> None:
    """Register circuit breaker backends (``[breaker] backend = "..."``)."""


@hookspec
def spectra_register_transports(register: Register) -> None:
    """Register transports that stream run events to clients (``[transport]``)."""


@hookspec
def spectra_register_event_logs(register: Register) -> None:
    """Register run event logs that transports read by id (``[event_log] backend = "..."``)."""


@hookspec
def spectra_register_health_checks(register: Register) -> None:
    """Register health checks that a health probe can run (``[[health]]``)."""


@hookspec
def spectra_register_model_providers(register: Register) -> None:
    """Register model providers (``[model] provider = "..."``)."""


@hookspec
def spectra_register_job_queues(register: Register) -> None:
    """Register job queue backends for worker pools (``[queue] backend = "..."``)."""


@hookspec
def spectra_register_authenticators(register: Register) -> None:
    """Register authenticators of the HTTP API (``[server.auth] backend = "..."``)."""


@hookspec
def spectra_register_commands(subparsers: Any) -> None:
    """Add sub-commands to the ``spectra`` command (as ``spectra serve``).

    ``subparsers`` is the :mod:`argparse` sub-parsers action of ``spectra``: call
    ``subparsers.add_parser("name", help=...)`` and give the parser a handler with
    ``set_defaults(handler=fn)``, where ``fn(args) -> int`` returns the exit status.
    A name already taken by spectra or another plugin is refused with a clear error.
    """
