"""SQLiteStoreOptions: the ``[store] backend = "sqlite"`` settings."""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

from spectra_core.durations import Duration, parse_duration
from spectra_core.errors import InvalidArgumentError

__all__ = [
    "SYNCHRONOUS_LEVELS",
    "SQLiteStoreOptions",
    "SqliteStoreOptions",
    "Synchronous",
    "check_synchronous",
]

#: SQLite ``PRAGMA synchronous`` levels, weakest first.
Synchronous: TypeAlias = Literal["off", "normal", "full", "extra"]
SYNCHRONOUS_LEVELS: tuple[Synchronous, ...] = ("off", "normal", "full", "extra")


def check_synchronous(value: object) -> Synchronous:
    """``value`` as a lower-case synchronous level, or InvalidArgumentError naming the choices."""
    if isinstance(value, str):
        for level in SYNCHRONOUS_LEVELS:
            if value.lower() == level:
                return level
    raise InvalidArgumentError(
        f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)} (default full), got {value!r}"
    )


def _non_empty(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise InvalidArgumentError(f"{attribute.name} must name the database file, got ''")


@attrs.frozen(kw_only=True)
class SQLiteStoreOptions:
    """Options of the ``sqlite`` session store.

    - ``path``: the database file (created 0600 with its parent folders 0700 if missing).
    - ``synchronous``: when a save is acknowledged. ``full`` (default): the commit is
      fsynced, an acknowledged save survives power loss. ``normal``: survives a crash
      of the process, the last saves may roll back on power loss. ``extra``: as full,
      plus directory syncs. ``off``: no fsync at all (tests, throwaway data).
    - ``busy_timeout``: how long a save waits for another process's write lock before
      failing with StoreError (seconds, or "250ms", "5s"...).

    ``synchronous`` accepts any case ("FULL" or "full") and is stored lower-case.
    """

    path: str = attrs.field(validator=_non_empty)
    synchronous: str = attrs.field(default="full", converter=check_synchronous)
    busy_timeout: Duration = attrs.field(default=Duration(5.0), converter=parse_duration)


#: The first release's name (acronyms are upper case, as in ``SQLiteSessionStore``): kept.
SqliteStoreOptions = SQLiteStoreOptions
