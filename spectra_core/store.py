"""The session store contract that every store backend implements."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeAlias, runtime_checkable

import attrs

from ._closing import AsyncResource
from .errors import InvalidArgumentError
from .models import ForkOrigin, Session

__all__ = [
    "BranchLoadingStore",
    "Placeholder",
    "SessionFilter",
    "SessionInfo",
    "SessionPage",
    "SessionStore",
    "StoreBase",
    "cut_page",
    "decode_cursor",
    "encode_cursor",
    "epoch_micros",
    "keyset_sql",
    "page_of",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _positive_limit(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise InvalidArgumentError(
            f"SessionFilter.{attribute.name} must be at least 1, got {value}"
        )


def _as_utc(moment: datetime | None) -> datetime | None:
    """A naive datetime counts as UTC, in every store (as :func:`epoch_micros` reads it)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@attrs.frozen(kw_only=True)
class SessionFilter:
    """Which sessions ``list`` returns: newest ``updated_at`` first, ``limit`` per page.

    ``updated_after`` is inclusive, ``updated_before`` exclusive; a naive datetime counts
    as UTC. Pass the previous page's ``next_cursor`` as ``cursor`` to get the next page.
    """

    user_id: str | None = None
    tenant_id: str | None = None
    updated_after: datetime | None = attrs.field(default=None, converter=_as_utc)
    updated_before: datetime | None = attrs.field(default=None, converter=_as_utc)
    limit: int = attrs.field(default=100, validator=_positive_limit)
    cursor: str | None = None

    def matches(self, info: SessionInfo) -> bool:
        """Whether ``info`` passes the user, tenant and time conditions (not the cursor)."""
        return (
            (self.user_id is None or info.user_id == self.user_id)
            and (self.tenant_id is None or info.tenant_id == self.tenant_id)
            and (self.updated_after is None or info.updated_at >= self.updated_after)
            and (self.updated_before is None or info.updated_at < self.updated_before)
        )


@attrs.frozen(kw_only=True)
class SessionInfo:
    """A session's header, as ``list`` returns it (no entries are read)."""

    id: str
    user_id: str | None
    tenant_id: str | None
    created_at: datetime
    updated_at: datetime
    forked_from: ForkOrigin | None = None
    version: int = 0

    @classmethod
    def of(cls, session: Session) -> SessionInfo:
        return cls(
            id=session.id,
            user_id=session.user_id,
            tenant_id=session.tenant_id,
            created_at=session.created_at,
            updated_at=session.updated_at,
            forked_from=session.forked_from,
            version=session.version,
        )

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return (self.updated_at, self.id)


@attrs.frozen
class SessionPage:
    """One page of ``list``: the sessions and the cursor of the next page (or ``None``)."""

    sessions: tuple[SessionInfo, ...]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[SessionInfo]:
        return iter(self.sessions)

    def __len__(self) -> int:
        return len(self.sessions)


def encode_cursor(info: SessionInfo) -> str:
    """An opaque cursor pointing just after ``info`` in newest-first order."""
    raw = json.dumps([info.updated_at.isoformat(), info.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(updated_at, id)`` a cursor points after; raises InvalidArgumentError if malformed."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, session_id = json.loads(raw)
        return datetime.fromisoformat(stamp), str(session_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"invalid list cursor {cursor!r}: {exc}") from None


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the epoch (a naive datetime counts as UTC): the sortable form
    SQL stores keep ``updated_at`` in."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


#: How a SQL driver writes its parameters: ``"?"`` (sqlite3, aiosqlite), ``"$1"`` (numbered:
#: asyncpg), ``"%s"`` (psycopg, MySQL drivers).
Placeholder: TypeAlias = Literal["?", "$1", "%s"]


def keyset_sql(
    flt: SessionFilter, *, placeholder: Placeholder = "?", first: int = 1
) -> tuple[str, list[Any]]:
    """``WHERE ... ORDER BY ... LIMIT ?`` and its parameters for one page of ``list`` in
    SQL, over columns ``user_id``, ``tenant_id``, ``updated_us`` (see :func:`epoch_micros`)
    and ``id``. It asks for ``limit + 1`` rows; :func:`cut_page` makes the page.

    ``placeholder`` is the driver's parameter style; with ``"$1"`` the parameters are
    numbered from ``first`` (pass ``first=3`` when the query already uses ``$1``, ``$2``).
    """
    if placeholder not in ("?", "$1", "%s"):
        raise InvalidArgumentError(f"placeholder must be '?', '$1' or '%s', got {placeholder!r}")
    params: list[Any] = []

    def p(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}" if placeholder == "$1" else placeholder

    where: list[str] = []
    if flt.user_id is not None:
        where.append(f"user_id = {p(flt.user_id)}")
    if flt.tenant_id is not None:
        where.append(f"tenant_id = {p(flt.tenant_id)}")
    if flt.updated_after is not None:
        where.append(f"updated_us >= {p(epoch_micros(flt.updated_after))}")
    if flt.updated_before is not None:
        where.append(f"updated_us < {p(epoch_micros(flt.updated_before))}")
    if flt.cursor is not None:
        stamp, after_id = decode_cursor(flt.cursor)
        where.append(f"(updated_us, id) < ({p(epoch_micros(stamp))}, {p(after_id)})")
    sql = (" WHERE " + " AND ".join(where)) if where else ""
    return sql + f" ORDER BY updated_us DESC, id DESC LIMIT {p(flt.limit + 1)}", params


def cut_page(infos: Sequence[SessionInfo], flt: SessionFilter) -> SessionPage:
    """A page from up to ``limit + 1`` matching infos in newest-first order."""
    page = tuple(infos[: flt.limit])
    more = len(infos) > flt.limit
    return SessionPage(page, encode_cursor(page[-1]) if more and page else None)


def page_of(infos: Iterable[SessionInfo], flt: SessionFilter) -> SessionPage:
    """Filter, order newest first and cut one page: for stores that scan in memory."""
    rows = [i for i in infos if flt.matches(i)]
    if flt.cursor is not None:
        after = decode_cursor(flt.cursor)
        rows = [i for i in rows if i.sort_key < after]
    rows.sort(key=lambda i: i.sort_key, reverse=True)
    return cut_page(rows[: flt.limit + 1], flt)


@runtime_checkable
class SessionStore(Protocol):
    """Where sessions live. Every store backend implements this and passes
    :class:`spectra_core.testing.SessionStoreConformance`.

    ``save`` writes only ``session.unsaved_entries`` and the header, and only if the
    stored session is the one the copy was loaded from (same incarnation) at the copy's
    version (0: no session may be stored under the id); otherwise it raises
    :class:`~spectra_core.ConflictError` and writes nothing. ``prepare_save`` in
    :mod:`spectra_core.backend` states the contract and does the checks.
    """

    async def load(self, session_id: str) -> Session: ...

    async def save(self, session: Session) -> None: ...

    async def delete(self, session_id: str) -> None: ...

    async def list(self, filter: SessionFilter | None = None) -> SessionPage: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class BranchLoadingStore(Protocol):
    """A store that can load just the end of a session's active branch, cheaply.

    ``load_branch(id, tail=None)`` returns what
    :func:`spectra_core.tree.trim_to_active_branch` would make of a full load: the active
    branch from the last compaction's first kept entry (at most ``tail`` entries), with
    ``session.partial`` set when anything was left out. Saving such a session appends
    as usual.
    """

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session: ...


class StoreBase(AsyncResource):
    """Optional base class: ``async with`` support around ``aclose`` and a no-op ``ping``."""
