"""One page of ``list`` from the sorted-set indexes (no SCAN of the keyspace).

The index of the narrowest filter (user, else tenant, else all sessions) is read newest
first in chunks, from the cursor on; each candidate's header is read to build its
``SessionInfo`` and check the other filters. Members whose session is gone (expired or
deleted) are dropped from the index on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spectra_core.serde import header_from_dict, loads
from spectra_core.store import (
    SessionFilter,
    SessionInfo,
    SessionPage,
    cut_page,
    decode_cursor,
    epoch_micros,
)

if TYPE_CHECKING:
    from ._hot import HotSessions

__all__ = ["list_sessions"]

_CHUNK = 200


async def list_sessions(hot: HotSessions, flt: SessionFilter) -> SessionPage:
    if flt.user_id is not None:
        key = hot.index_key("user", flt.user_id)
    elif flt.tenant_id is not None:
        key = hot.index_key("tenant", flt.tenant_id)
    else:
        key = hot.index_key()
    top: float | str = "+inf"
    if flt.updated_before is not None:
        top = epoch_micros(flt.updated_before) - 1
    bottom: float | str = "-inf" if flt.updated_after is None else epoch_micros(flt.updated_after)
    after: tuple[int, str] | None = None
    if flt.cursor is not None:
        stamp, after_id = decode_cursor(flt.cursor)
        after = (epoch_micros(stamp), after_id)
        top = after[0] if top == "+inf" else min(float(top), after[0])
    wanted = flt.limit + 1
    infos: list[SessionInfo] = []
    offset = 0
    while len(infos) < wanted:
        rows: list[Any] = await hot.client.zrange(
            key, top, bottom, desc=True, byscore=True, offset=offset, num=_CHUNK, withscores=True
        )
        offset += len(rows)
        ids = [m.decode() for m, score in rows if after is None or (int(score), m.decode()) < after]
        if ids:
            gone: list[str] = []
            for sid, header in zip(ids, await hot.headers(ids), strict=True):
                if header is None:
                    gone.append(sid)
                    continue
                info = _info(loads(header))
                if flt.matches(info) and len(infos) < wanted:
                    infos.append(info)
            if gone:
                await hot.client.zrem(key, *gone)
        if len(rows) < _CHUNK:
            break
    return cut_page(infos, flt)


def _info(header: dict[str, object]) -> SessionInfo:
    fields = header_from_dict(header)
    return SessionInfo(
        id=fields["id"],
        user_id=fields.get("user_id"),
        tenant_id=fields.get("tenant_id"),
        created_at=fields["created_at"],
        updated_at=fields["updated_at"],
        forked_from=fields.get("forked_from"),
        version=fields.get("version", 0),
    )
