"""A save as one SQL statement: rows inserted into a per-connection TEMP view whose
INSTEAD OF triggers check the version, write the header and append the entry rows.

One statement in autocommit mode is one transaction: it takes the write lock when it
starts (waiting up to ``busy_timeout``, exactly as ``BEGIN IMMEDIATE``), so the version
check and the writes cannot interleave with another writer; any error (a version
conflict raised by the trigger, a duplicate entry id, a full disk) rolls the whole
statement back; it commits (and, with ``synchronous = full``, fsyncs) before returning.
It costs one round trip to aiosqlite's thread instead of one per statement (a batch of
more than ``CHUNK`` entries takes one statement per chunk, in one ``BEGIN IMMEDIATE``).

The triggers and the view live in the connection's ``temp`` schema: the file's layout is
not changed, and other connections (older releases included) never see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from spectra_core.models import Entry, entry_kind
from spectra_core.serde import entry_to_json

__all__ = ["CHUNK", "CONFLICT", "SAVE_DDL", "save_statements"]

#: The message of the trigger's RAISE when the stored version is not the expected one.
CONFLICT = "spectra: version conflict"

#: Entries per statement: 14 + 5 * CHUNK parameters stay under SQLite's oldest default
#: limit of 999. A bigger batch is saved by several statements in one BEGIN IMMEDIATE.
CHUNK = 190

# One row of the view per statement part: first the header row (``e_id`` NULL), which
# checks the version and writes the header (``entry_count`` grows by ``added``), then one
# row per new entry, in order. An entry row finds its parent by one entries_by_id lookup:
# earlier rows of the same statement are already inserted, so a parent in the batch is
# found like a stored one (a parent that is not stored, or comes later, makes a root).
SAVE_DDL = (
    """
CREATE TEMP VIEW IF NOT EXISTS spectra_save (
    id, expected, version, user_id, tenant_id, created_at, updated_at, updated_us,
    leaf_id, forked_from, config, format, incarnation, added, e_index, e_id, e_parent, e_kind,
    e_data
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL
""",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS spectra_save_header INSTEAD OF INSERT ON spectra_save
WHEN NEW.e_id IS NULL
BEGIN
    SELECT RAISE(ABORT, '{CONFLICT}')
    WHERE CASE WHEN NEW.expected = 0
        THEN EXISTS (SELECT 1 FROM sessions WHERE id = NEW.id)
        ELSE NOT EXISTS (SELECT 1 FROM sessions WHERE id = NEW.id AND version = NEW.expected
                         AND incarnation IS NEW.incarnation)
    END;
    INSERT INTO sessions (id, user_id, tenant_id, created_at, updated_at, updated_us, version,
                          leaf_id, forked_from, config, entry_count, format, incarnation)
    SELECT NEW.id, NEW.user_id, NEW.tenant_id, NEW.created_at, NEW.updated_at, NEW.updated_us,
        NEW.version, NEW.leaf_id, NEW.forked_from, NEW.config, NEW.added, NEW.format,
        NEW.incarnation
    WHERE NEW.expected = 0;
    UPDATE sessions SET user_id = NEW.user_id, tenant_id = NEW.tenant_id,
        created_at = NEW.created_at, updated_at = NEW.updated_at, updated_us = NEW.updated_us,
        version = NEW.version, leaf_id = NEW.leaf_id, forked_from = NEW.forked_from,
        config = NEW.config, entry_count = entry_count + NEW.added, format = NEW.format
    WHERE id = NEW.id AND NEW.expected != 0;
END
""",
    """
CREATE TEMP TRIGGER IF NOT EXISTS spectra_save_entry INSTEAD OF INSERT ON spectra_save
WHEN NEW.e_id IS NOT NULL
BEGIN
    INSERT INTO entries (session_id, seq, id, parent_id, kind, depth, model_seq,
                         compaction_seq, data)
    SELECT NEW.id, b.seq, NEW.e_id, NEW.e_parent, NEW.e_kind,
        CASE WHEN p.seq IS NULL THEN 0 ELSE p.depth + 1 END,
        CASE WHEN p.kind = 'model_change' THEN p.seq ELSE p.model_seq END,
        CASE WHEN NEW.e_kind = 'compaction' THEN b.seq ELSE p.compaction_seq END,
        NEW.e_data
    -- no header row: seq is NULL and the NOT NULL constraint aborts the statement
    FROM (SELECT (SELECT entry_count FROM sessions WHERE id = NEW.id) - NEW.added + NEW.e_index
          AS seq) AS b
    LEFT JOIN entries AS p ON p.session_id = NEW.id AND p.id = NEW.e_parent;
END
""",
)

_HEADER_ROW = "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,NULL,NULL,NULL,NULL,NULL)"
_ENTRY_ROW = "(?1,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,?{added},?,?,?,?,?)"


@lru_cache(maxsize=64)
def _sql(header: bool, rows: int) -> str:
    """``INSERT INTO spectra_save VALUES`` the header row (if ``header``) and ``rows``
    entry rows; parameters ?1 (the session id) and the count of added entries are shared."""
    parts = [_HEADER_ROW] if header else []
    parts += [_ENTRY_ROW.format(added=14 if header else 2)] * rows
    return "INSERT INTO spectra_save VALUES " + ",".join(parts)


def save_statements(
    header: Sequence[Any], entries: Sequence[Entry]
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements of one save: ``header`` is ``(id, expected, version, user_id,
    tenant_id, created_at, updated_at, updated_us, leaf_id, forked_from, config, format,
    incarnation)``.

    One statement for up to ``CHUNK`` entries (run it alone: it is its own transaction);
    more statements for a bigger batch (run them in one ``BEGIN IMMEDIATE``).
    """
    added = len(entries)
    rows: list[Any] = []
    for index, entry in enumerate(entries):
        rows += (index, entry.id, entry.parent_id, entry_kind(entry), entry_to_json(entry))
    first = min(added, CHUNK)
    out = [(_sql(True, first), (*header, added, *rows[: 5 * first]))]
    for start in range(first, added, CHUNK):
        count = min(CHUNK, added - start)
        chunk = rows[5 * start : 5 * (start + count)]
        out.append((_sql(False, count), (header[0], added, *chunk)))
    return out
