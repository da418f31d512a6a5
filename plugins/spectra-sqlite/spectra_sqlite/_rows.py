"""Rows of the ``entries`` table: an entry's JSON plus the tree facts bounded loads use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import attrs

from spectra_core.models import Entry, entry_kind
from spectra_core.serde import dumps, entry_to_dict

__all__ = ["EntryRow", "Node", "child_node", "entry_rows", "fetch"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: (session_id, seq, id, parent_id, kind, depth, model_seq, compaction_seq, data)
EntryRow = tuple[str, int, str, str | None, str, int, int | None, int | None, str]


async def fetch(db: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    """All rows of one query, as a list."""
    return list(await db.execute_fetchall(sql, tuple(params)))


@attrs.frozen
class Node:
    """Where an entry sits in its tree, as stored beside its JSON.

    ``depth`` is its index on its branch (a root is 0); ``model_seq`` is the seq of the
    latest model change strictly above it on its branch; ``compaction_seq`` the seq of
    the latest compaction at or above it.
    """

    seq: int
    kind: str
    depth: int
    model_seq: int | None
    compaction_seq: int | None


def child_node(seq: int, kind: str, parent: Node | None) -> Node:
    """The node of a new entry of ``kind`` appended at ``seq`` under ``parent``."""
    own_compaction = seq if kind == "compaction" else None
    if parent is None:
        return Node(seq, kind, 0, None, own_compaction)
    return Node(
        seq,
        kind,
        parent.depth + 1,
        parent.seq if parent.kind == "model_change" else parent.model_seq,
        own_compaction if own_compaction is not None else parent.compaction_seq,
    )


def entry_rows(
    session_id: str,
    first_seq: int,
    entries: Iterable[Entry | Mapping[str, Any]],
    stored_parent: Mapping[str, Node],
) -> list[EntryRow]:
    """Rows for ``entries`` appended from ``first_seq`` on.

    A parent is looked up among the earlier entries of the batch, then in
    ``stored_parent`` (nodes already in the table); an unknown parent counts as none.
    Entries may be given as model objects or as their JSON dicts.
    """
    batch: dict[str, Node] = {}
    rows: list[EntryRow] = []
    for seq, entry in enumerate(entries, start=first_seq):
        if isinstance(entry, Mapping):
            data = dict(entry)
            entry_id, parent_id, kind = str(data["id"]), data.get("parent_id"), str(data["type"])
        else:
            data = entry_to_dict(entry)
            entry_id, parent_id, kind = entry.id, entry.parent_id, entry_kind(entry)
        parent = None
        if parent_id is not None:
            parent = batch.get(parent_id) or stored_parent.get(parent_id)
        node = child_node(seq, kind, parent)
        batch[entry_id] = node
        rows.append(
            (
                session_id,
                seq,
                entry_id,
                parent_id,
                kind,
                node.depth,
                node.model_seq,
                node.compaction_seq,
                dumps(data),
            )
        )
    return rows
