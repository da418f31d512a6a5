"""The spectra exception hierarchy: every error is a :class:`SpectraError`."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CapacityError",
    "CircuitOpenError",
    "ConfigError",
    "ConflictError",
    "EngineDrainingError",
    "EngineNotStartedError",
    "EntryNotFoundError",
    "InvalidArgumentError",
    "InvalidIdError",
    "PluginError",
    "RateLimitedError",
    "RunNotFoundError",
    "SessionBusyError",
    "SessionNotFoundError",
    "SpectraError",
    "StoreError",
]


class SpectraError(Exception):
    """Base class of every error raised by spectra and its plugins."""


class ConfigError(SpectraError):
    """A configuration file or value is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class PluginError(SpectraError):
    """A plugin failed to load, or a backend is unknown, broken or registered twice."""


class InvalidArgumentError(SpectraError, ValueError):
    """An argument is malformed (a bad cursor, a non-JSON payload, a negative limit...)."""


class InvalidIdError(InvalidArgumentError):
    """A session or entry id is malformed (empty, too long, or unsafe characters)."""


class SessionNotFoundError(SpectraError, LookupError):
    """No session with this id exists in the store."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id!r} not found")


class EntryNotFoundError(SpectraError, LookupError):
    """No entry with this id exists in the session."""

    def __init__(self, session_id: str, entry_id: str) -> None:
        self.session_id = session_id
        self.entry_id = entry_id
        super().__init__(f"entry {entry_id!r} not found in session {session_id!r}")


class RunNotFoundError(SpectraError, LookupError):
    """No run with this id is running here or ended recently (see ``wait_run``)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} is not running here and did not end recently")


#: The first release's names (exception names now end in ``Error``): plain aliases, kept.
SessionNotFound = SessionNotFoundError
EntryNotFound = EntryNotFoundError


class ConflictError(SpectraError):
    """The stored session changed since this copy was loaded; nothing was written.

    Reload the session, re-apply the change and save again. Stores raise it as
    ``ConflictError(session_id, expected_version=..., actual_version=...)``:

    - ``expected_version``: the version of the copy being saved (``0``: a creation);
    - ``actual_version``: the stored version, or ``None`` when nothing is stored under
      the id (the session was deleted);
    - ``recreated``: the stored session is another incarnation, created under the same
      id after the copy's session was deleted (its version may even be the same).
    """

    def __init__(
        self,
        session_id: str,
        expected_version: int,
        actual_version: int | None = None,
        *,
        recreated: bool = False,
    ) -> None:
        self.session_id = session_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.recreated = recreated
        if recreated:
            detail = "it was deleted and created again since this copy was loaded"
        elif actual_version is None:
            detail = "it was deleted"
        elif expected_version == 0:
            detail = "a session with this id already exists"
        else:
            detail = f"stored version is {actual_version}, this copy has {expected_version}"
        super().__init__(
            f"conflicting save of session {session_id!r}: {detail}; "
            "nothing was written, reload and retry"
        )


class StoreError(SpectraError):
    """A store could not read or write (corrupt data, I/O failure, service down)."""


class RateLimitedError(SpectraError):
    """A rate limit rejected the request; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class CircuitOpenError(SpectraError):
    """The circuit breaker is open; calls fail fast for ``retry_after`` more seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class CapacityError(SpectraError):
    """The engine already runs its maximum number of concurrent sessions."""


class SessionBusyError(SpectraError):
    """Another run is in progress on this session."""


class EngineDrainingError(SpectraError):
    """The engine is stopping (or stopped) and accepts no new runs."""


class EngineNotStartedError(SpectraError):
    """``run`` was called before ``engine.start()``."""
