"""HotSessions: the Redis side of the session store (one session's keys per call).

Every method talks to Redis and lets redis-py's errors through; the store decides what
an error means (a StoreError, or the cold store's turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from spectra_core.models import CompactionEntry, Entry, Session, entry_kind
from spectra_core.serde import dumps, entry_to_json, header_texts, header_to_dict
from spectra_core.store import epoch_micros

from ._store_lua import DELETE, LOAD, LOAD_BRANCH, WRITE

__all__ = ["HotSessions", "WriteResult"]

#: What a write returned: ``("ok", version)``, ``("conflict", stored version or None)``,
#: ``("dup", entry id)`` or ``("stale", stored version)``.
WriteResult = tuple[str, Any]


class HotSessions:
    """Sessions in Redis under ``prefix``, kept ``ttl_ms`` after their last use (0: forever)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_ms: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self._write: AsyncScript = client.register_script(WRITE)
        self._load: AsyncScript = client.register_script(LOAD)
        self._branch: AsyncScript = client.register_script(LOAD_BRANCH)
        self._delete: AsyncScript = client.register_script(DELETE)

    def keys(self, session_id: str) -> list[str]:
        """The session's header, entries and tree keys (one hash tag: one cluster slot)."""
        base = f"{self.prefix}:s:{{{session_id}}}"
        return [f"{base}:h", f"{base}:e", f"{base}:t"]

    def index_key(self, field: str | None = None, value: str | None = None) -> str:
        """The sorted set listing sessions by ``updated_at``: all, or one user's/tenant's."""
        tag = f"{{{self.prefix}:idx}}"
        return (
            f"{self.prefix}:{tag}:all" if field is None else f"{self.prefix}:{tag}:{field}:{value}"
        )

    # --- writing ----------------------------------------------------------------------

    async def write(
        self, mode: str, session: Session, expected: int, version: int, entries: Sequence[Entry]
    ) -> WriteResult:
        """Append ``entries`` if the stored copy is at ``expected`` (``mode="save"``), or
        replace an older or missing copy by the whole session (``mode="put"``)."""
        header = header_to_dict(session)
        header["version"] = version
        created = session.incarnation or header_texts(session)[0]  # identity of the copy
        args: list[Any] = [
            mode,
            expected,
            version,
            created,
            dumps(header),
            epoch_micros(session.updated_at),
            session.user_id or "",
            session.tenant_id or "",
            session.leaf_id or "",
            self.ttl_ms,
        ]
        for e in entries:
            first_kept = e.first_kept_entry_id if isinstance(e, CompactionEntry) else ""
            args += (e.id, e.parent_id or "", entry_kind(e), first_kept, entry_to_json(e))
        status, value = await self._write(keys=self.keys(session.id), args=args)
        status = status.decode()
        if status == "dup":
            return status, value.decode()
        return status, int(value) if value else None

    async def index(self, session: Session, version: int) -> None:
        """Put the session in the listing indexes (scores only move forward)."""
        score = epoch_micros(session.updated_at)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.index_key(), {session.id: score}, gt=True)
        if session.user_id:
            pipe.zadd(self.index_key("user", session.user_id), {session.id: score}, gt=True)
        if session.tenant_id:
            pipe.zadd(self.index_key("tenant", session.tenant_id), {session.id: score}, gt=True)
        await pipe.execute()

    async def delete(self, session_id: str) -> bool:
        """Delete the session's keys and its index entries; False if it was not there."""
        found = await self._delete(keys=self.keys(session_id))
        if not found[0]:
            return False
        await self.unindex(session_id, found[1].decode() or None, found[2].decode() or None)
        return True

    async def unindex(self, session_id: str, user: str | None, tenant: str | None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.index_key(), session_id)
        if user:
            pipe.zrem(self.index_key("user", user), session_id)
        if tenant:
            pipe.zrem(self.index_key("tenant", tenant), session_id)
        await pipe.execute()

    async def invalidate(self, session_id: str) -> None:
        """Drop the hot copy (the cold store has the truth); the index is kept."""
        await self.client.delete(*self.keys(session_id))

    # --- reading ----------------------------------------------------------------------

    async def load(self, session_id: str) -> list[bytes] | None:
        """``[header json, entry json lines]``, or None when Redis does not have the session."""
        found = await self._load(keys=self.keys(session_id), args=[self.ttl_ms])
        return found or None

    async def load_branch(self, session_id: str, tail: int | None) -> list[bytes] | None:
        """``[header json, total, model change json or b"", entry json lines]`` or None."""
        found = await self._branch(keys=self.keys(session_id), args=[self.ttl_ms, tail or 0])
        return found or None

    async def headers(self, session_ids: Sequence[str]) -> list[bytes | None]:
        """The header JSON of each session (None where it is gone)."""
        pipe = self.client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hget(self.keys(sid)[0], "h")
        return list(await pipe.execute())
