"""RedisSessionStore: sessions in Redis, optionally written through to a cold store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from spectra_core.backend import new_incarnation
from spectra_core.clock import Clock, SystemClock
from spectra_core.errors import (
    ConflictError,
    InvalidArgumentError,
    SessionNotFoundError,
    StoreError,
)
from spectra_core.ids import validate_id
from spectra_core.models import ModelChangeEntry, PartialLoad, Session
from spectra_core.serde import (
    bulk_decoding,
    entries_from_json_lines,
    entry_from_json,
    header_from_dict,
    loads,
)
from spectra_core.store import SessionFilter, SessionPage, SessionStore, StoreBase
from spectra_core.tree import trim_to_active_branch

from ._client import RedisUser
from ._hot import HotSessions
from ._listing import list_sessions

__all__ = ["RedisSessionStore"]

log = structlog.get_logger("spectra_redis")
T = TypeVar("T")


class RedisSessionStore(RedisUser, StoreBase):
    """Sessions in Redis; with ``cold_store``, written through to it.

    ``redis`` is a URL (a pool shared per URL and event loop, closed when the last user
    closes) or a ``redis.asyncio.Redis`` client (left open). Every load and save refreshes
    the session's ``ttl_seconds`` (0: keep forever). A save appends only the new entries:
    one Lua script checks the version and appends, atomically.

    With a ``cold_store``, a save is acknowledged once the cold store has it (the cold
    store decides conflicts), then Redis is updated; when that fails the hot copy is
    dropped. A load that misses Redis reads the cold store and warms Redis again. While
    Redis is unreachable, reads and writes go to the cold store (``ping`` reports the
    store degraded), and Redis is tried again every ``retry_interval`` seconds.
    """

    def __init__(
        self,
        redis: aioredis.Redis | str,
        *,
        ttl_seconds: float = 3600,
        cold_store: SessionStore | None = None,
        key_prefix: str = "spectra",
        socket_timeout: float = 5.0,
        retry_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float):
            raise InvalidArgumentError(f"ttl_seconds must be a number, got {ttl_seconds!r}")
        if ttl_seconds < 0:
            raise InvalidArgumentError(
                f"ttl_seconds must be 0 (no expiry) or more, got {ttl_seconds}"
            )
        if not key_prefix or not isinstance(key_prefix, str):
            raise InvalidArgumentError(f"key_prefix must be a non-empty string, got {key_prefix!r}")
        super().__init__(redis, socket_timeout=socket_timeout)
        self.ttl_seconds = ttl_seconds
        self.cold_store = cold_store
        self.key_prefix = key_prefix
        self.retry_interval = retry_interval
        self._clock: Clock = clock or SystemClock()
        self._skip_until = 0.0  # Redis is not tried before this (monotonic), after a failure
        self._down = False
        self._dirty: set[str] = set()  # hot copies that may be stale since an outage

    def __repr__(self) -> str:
        cold = f", cold_store={self.cold_store!r}" if self.cold_store is not None else ""
        return f"RedisSessionStore({self.url_shown!r}, ttl_seconds={self.ttl_seconds}{cold})"

    def _hot(self) -> HotSessions:
        client = self.client()
        hot: HotSessions | None = getattr(self, "_hot_sessions", None)
        if hot is None or hot.client is not client:
            hot = self._hot_sessions = HotSessions(
                client, self.key_prefix, round(self.ttl_seconds * 1000)
            )
        return hot

    # --- Redis calls and outages -------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """Whether Redis failed last time and the cold store serves alone."""
        return self._down

    async def _redis(self, action: str, work: Callable[[HotSessions], Awaitable[T]]) -> T:
        """Run ``work``; without a cold store a Redis failure is a StoreError."""
        if self.cold_store is not None and self._clock.monotonic() < self._skip_until:
            raise _Skipped
        try:
            hot = self._hot()
            if self._dirty:
                dirty, self._dirty = self._dirty, set()
                try:
                    for sid in dirty:
                        await hot.invalidate(sid)
                except BaseException:
                    self._dirty |= dirty
                    raise
            result = await work(hot)
        except RedisError as exc:
            if self.cold_store is None:
                raise self.error(exc, action) from exc
            self._skip_until = self._clock.monotonic() + self.retry_interval
            if not self._down:
                self._down = True
                log.warning(
                    "redis unreachable: the cold store serves alone until it is back",
                    url=self.url_shown,
                    action=action,
                    error=str(exc),
                )
            raise _Skipped from exc
        if self._down:
            self._down = False
            log.warning("redis is back: serving from redis again", url=self.url_shown)
        return result

    async def ping(self) -> None:
        """PING Redis (and the cold store); raise StoreError if either fails."""
        if self.cold_store is not None:
            await self.cold_store.ping()
        try:
            await self._hot().client.ping()
        except RedisError as exc:
            degraded = " (degraded: the cold store serves alone)" if self.cold_store else ""
            raise self.error(exc, "ping" + degraded) from exc

    async def aclose(self) -> None:
        """Release the Redis pool (closed with its last user) and close the cold store."""
        await self.release()
        if self.cold_store is not None:
            await self.cold_store.aclose()

    # --- reading ----------------------------------------------------------------------

    def _session(self, session_id: str, header: bytes, data: list[bytes]) -> Session:
        try:
            fields = header_from_dict(loads(header))
            with bulk_decoding():
                try:  # the fast path: every entry in the usual form, one per line
                    entries = entries_from_json_lines(b"\n".join(data)) if data else []
                except ValueError:
                    entries = []
                if len(entries) != len(data):  # convert (or name the bad one) one by one
                    entries = [entry_from_json(d) for d in data]
        except Exception as exc:
            raise StoreError(
                f"session {session_id!r} in redis {self.url_shown} is corrupt ({exc}); "
                "delete it (other sessions are not affected)"
            ) from exc
        return Session(**fields, entries=entries, saved_count=len(entries))

    async def load(self, session_id: str) -> Session:
        """The whole session (from Redis, else from the cold store, warming Redis)."""
        validate_id(session_id)
        try:
            found = await self._redis(f"loading {session_id!r}", lambda h: h.load(session_id))
        except _Skipped:
            return await self._cold().load(session_id)
        if found is not None:
            header, lines = found  # an entry's JSON is one line (newlines are escaped)
            return self._session(session_id, header, lines.split(b"\n") if lines else [])
        if self.cold_store is None:
            raise SessionNotFoundError(session_id)
        session = await self.cold_store.load(session_id)
        await self._warm(session)
        return session

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        """The active branch's window (see ``BranchLoadingStore``), walked in Redis from
        the leaf up: the entries sent are the ones returned."""
        validate_id(session_id)
        if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 1):
            raise InvalidArgumentError(f"tail must be at least 1, got {tail!r}")
        try:
            found = await self._redis(
                f"loading {session_id!r}", lambda h: h.load_branch(session_id, tail)
            )
        except _Skipped:
            return trim_to_active_branch(await self._cold().load(session_id), tail)
        if found is None:
            if self.cold_store is None:
                raise SessionNotFoundError(session_id)
            session = await self.cold_store.load(session_id)
            await self._warm(session)
            return trim_to_active_branch(session, tail)
        header, total, model_json, lines = found
        base = self._session(session_id, header, lines.split(b"\n") if lines else [])
        model = None
        if model_json:
            change = entry_from_json(model_json)
            if isinstance(change, ModelChangeEntry):
                model = change.model
        entries = base.entries
        partial = None
        if len(entries) != int(total):
            partial = PartialLoad(entries[0].id if entries else None, model)
        return Session(
            id=base.id,
            created_at=base.created_at,
            updated_at=base.updated_at,
            user_id=base.user_id,
            tenant_id=base.tenant_id,
            config=base.config,
            forked_from=base.forked_from,
            leaf_id=base.leaf_id,
            version=base.version,
            incarnation=base.incarnation,
            entries=entries,
            partial=partial,
            saved_count=len(entries),
        )

    async def _warm(self, session: Session) -> None:
        """Copy a session read from the cold store into Redis (unless Redis has newer)."""
        if session.partial is not None:
            return
        with suppress(_Skipped):
            await self._redis(
                f"warming {session.id!r}",
                lambda h: h.write("put", session, 0, session.version, session.entries),
            )

    def _cold(self) -> SessionStore:
        assert self.cold_store is not None  # _Skipped is only raised with a cold store
        return self.cold_store

    # --- writing ----------------------------------------------------------------------

    async def save(self, session: Session) -> None:
        """Append the unsaved entries if the stored version still matches (else
        ConflictError, nothing written); with a cold store, write through to it first."""
        validate_id(session.id)
        new = list(session.unsaved_entries)
        for e in new:
            validate_id(e.id, "entry id")
        expected = session.version
        if expected == 0 and session.incarnation is None:
            session.incarnation = new_incarnation()  # tells a re-created session apart
        if self.cold_store is not None:
            await self.cold_store.save(session)  # acknowledged here: it decides conflicts
            await self._write_through(session, expected, new)
            return
        status, value = await self._redis(
            f"saving {session.id!r}",
            lambda h: h.write("save", session, expected, expected + 1, new),
        )
        if status == "recreated":
            raise ConflictError(session.id, expected, value, recreated=True)
        if status == "conflict":
            raise ConflictError(session.id, expected, value)
        if status == "dup":
            raise StoreError(
                f"saving session {session.id!r} in redis {self.url_shown}: unsaved entry "
                f"{value!r} reuses the id of a stored entry; nothing was written, reload "
                "the whole session"
            )
        session.mark_saved(expected + 1)
        await self._redis(f"indexing {session.id!r}", lambda h: h.index(session, expected + 1))

    async def _write_through(self, session: Session, expected: int, new: list[Any]) -> None:
        """After the cold store took the save: append in Redis, or drop the hot copy."""

        async def work(hot: HotSessions) -> None:
            status, _ = await hot.write("save", session, expected, session.version, new)
            if status != "ok":
                await hot.invalidate(session.id)

        try:
            await self._redis(f"saving {session.id!r}", work)
        except _Skipped:
            self._dirty.add(session.id)
        except BaseException:
            self._dirty.add(session.id)
            raise

    async def delete(self, session_id: str) -> None:
        """Delete the session, or raise SessionNotFoundError."""
        validate_id(session_id)
        if self.cold_store is not None:
            await self.cold_store.delete(session_id)
            try:
                await self._redis(f"deleting {session_id!r}", lambda h: h.delete(session_id))
            except _Skipped:
                self._dirty.add(session_id)
            return
        if not await self._redis(f"deleting {session_id!r}", lambda h: h.delete(session_id)):
            raise SessionNotFoundError(session_id)

    # --- listing ----------------------------------------------------------------------

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        """One page of headers, newest first: from the cold store when there is one
        (it has every session), else from Redis's sorted-set indexes."""
        flt = filter or SessionFilter()
        if self.cold_store is not None:
            return await self.cold_store.list(flt)
        return await self._redis("listing sessions", lambda h: list_sessions(h, flt))


class _Skipped(Exception):
    """Redis is skipped (down, or failed just now): the cold store serves."""
