"""A save as one SQL statement: a per-connection TEMP view whose INSTEAD OF trigger checks
the version, appends the entry rows and writes the header.

One statement in autocommit mode is one transaction: it takes the write lock when it
starts (waiting up to ``busy_timeout``, exactly as ``BEGIN IMMEDIATE``), so the version
check and the writes cannot interleave with another writer; any error (a version
conflict raised by the trigger, a duplicate entry id, a full disk) rolls the whole
statement back; it commits (and, with ``synchronous = full``, fsyncs) before returning.
It costs one round trip to aiosqlite's thread instead of one per statement.

The trigger and the view live in the connection's ``temp`` schema: the file's layout is
not changed, and other connections (older releases included) never see them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from spectra_core.models import Entry, entry_kind
from spectra_core.serde import dumps, entry_to_dict

__all__ = ["CONFLICT", "SAVE", "SAVE_DDL", "save_rows"]

#: The message of the trigger's RAISE when the stored version is not the expected one.
CONFLICT = "spectra: version conflict"

# ``rows`` is a JSON array with one array per new entry (see ``save_rows``):
# [id, parent_id, kind, anchor, depth_offset, model_index, compaction_index, data].
# ``anchor`` is the stored entry the entry's chain of new ancestors hangs from (NULL, or
# an id that is not stored: a root); the indexes point into the batch, whose first entry
# gets seq ``entry_count``. The anchor's row (one entries_by_id lookup) gives the rest.
SAVE_DDL = (
    """
CREATE TEMP VIEW IF NOT EXISTS spectra_save (
    id, expected, version, user_id, tenant_id, created_at, updated_at, updated_us,
    leaf_id, forked_from, config, format, added, rows
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
""",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS spectra_save_insert INSTEAD OF INSERT ON spectra_save
BEGIN
    SELECT RAISE(ABORT, '{CONFLICT}')
    WHERE CASE WHEN NEW.expected = 0
        THEN EXISTS (SELECT 1 FROM sessions WHERE id = NEW.id)
        ELSE NOT EXISTS (SELECT 1 FROM sessions WHERE id = NEW.id AND version = NEW.expected)
    END;
    INSERT INTO entries (session_id, seq, id, parent_id, kind, depth, model_seq,
                         compaction_seq, data)
    SELECT NEW.id, base.n + j.key,
        json_extract(j.value, '$[0]'),
        json_extract(j.value, '$[1]'),
        json_extract(j.value, '$[2]'),
        CASE WHEN a.seq IS NULL THEN 0 ELSE a.depth + 1 END + json_extract(j.value, '$[4]'),
        CASE
            WHEN json_extract(j.value, '$[5]') IS NOT NULL
                THEN base.n + json_extract(j.value, '$[5]')
            WHEN a.kind = 'model_change' THEN a.seq
            ELSE a.model_seq
        END,
        CASE
            WHEN json_extract(j.value, '$[6]') IS NOT NULL
                THEN base.n + json_extract(j.value, '$[6]')
            ELSE a.compaction_seq
        END,
        json_extract(j.value, '$[7]')
    FROM json_each(NEW.rows) AS j
    JOIN (SELECT COALESCE((SELECT entry_count FROM sessions WHERE id = NEW.id), 0) AS n)
        AS base
    LEFT JOIN entries AS a
        ON a.session_id = NEW.id AND a.id = json_extract(j.value, '$[3]');
    INSERT INTO sessions (id, user_id, tenant_id, created_at, updated_at, updated_us, version,
                          leaf_id, forked_from, config, entry_count, format)
    SELECT NEW.id, NEW.user_id, NEW.tenant_id, NEW.created_at, NEW.updated_at, NEW.updated_us,
        NEW.version, NEW.leaf_id, NEW.forked_from, NEW.config, NEW.added, NEW.format
    WHERE NEW.expected = 0;
    UPDATE sessions SET user_id = NEW.user_id, tenant_id = NEW.tenant_id,
        created_at = NEW.created_at, updated_at = NEW.updated_at, updated_us = NEW.updated_us,
        version = NEW.version, leaf_id = NEW.leaf_id, forked_from = NEW.forked_from,
        config = NEW.config, entry_count = entry_count + NEW.added, format = NEW.format
    WHERE id = NEW.id AND NEW.expected != 0;
END
""",
)

#: The save: ``(id, expected, version, user_id, tenant_id, created_at, updated_at,
#: updated_us, leaf_id, forked_from, config, format, added, rows)``.
SAVE = "INSERT INTO spectra_save VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


def save_rows(entries: Iterable[Entry]) -> tuple[int, str]:
    """The number of ``entries`` and the ``rows`` JSON of a save appending them.

    Tree facts are relative to the batch, as ``_rows.child_node`` would compute them from
    the parent: a parent among the earlier entries of the batch gives its anchor, depth
    offset + 1 and indexes; any other parent is the anchor itself (looked up by SQL,
    a root when it is not stored).
    """
    # id -> (kind, index, anchor, depth offset, model index, compaction index)
    batch: dict[str, tuple[str, int, str | None, int, int | None, int | None]] = {}
    rows: list[list[Any]] = []
    for index, entry in enumerate(entries):
        kind = entry_kind(entry)
        parent_id = entry.parent_id
        own_compaction = index if kind == "compaction" else None
        parent = batch.get(parent_id) if parent_id is not None else None
        if parent is None:
            anchor, offset, model, compaction = parent_id, 0, None, own_compaction
        else:
            p_kind, p_index, anchor, p_offset, p_model, p_compaction = parent
            offset = p_offset + 1
            model = p_index if p_kind == "model_change" else p_model
            compaction = own_compaction if own_compaction is not None else p_compaction
        batch[entry.id] = (kind, index, anchor, offset, model, compaction)
        rows.append(
            [
                entry.id,
                parent_id,
                kind,
                anchor,
                offset,
                model,
                compaction,
                dumps(entry_to_dict(entry)),
            ]
        )
    return len(rows), json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
