"""structlog setup for applications and the CLI: key=value on a terminal, JSON otherwise.

Inside a run every line carries ``engine_id``, ``session_id``, ``run_id``, ``user_id`` and
``tenant_id`` (bound as context variables by the engine). The library itself never
configures logging; call :func:`configure_logging` from your application if you want
this setup.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging"]


def configure_logging(
    level: str | int = "info", *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Log at ``level`` to ``stream`` (default stderr), as JSON lines unless ``stream`` is
    a terminal (or as ``json`` says)."""
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
