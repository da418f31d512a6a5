"""Reading a session file: the whole session (one bulk decode of a clean file, else line
by line) or the end of its active branch, read backwards from the last commit."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import structlog

from spectra_core.backend import (
    CompactionEntry,
    Entry,
    InvalidArgumentError,
    ModelChangeEntry,
    PartialLoad,
    Session,
    SessionInfo,
    SessionNotFoundError,
    bulk_decoding,
    entry_from_json,
    loads,
    session_from_stored,
    validate_id,
)
from spectra_core.serde import entry_records_from_json_lines

from ._files import SUFFIX, Files
from ._format import Corrupt, LineReader, last_commit, split_entry

__all__ = ["Loading", "info_of"]

log = structlog.get_logger("spectra_fs")


class Loading(Files):
    """``load`` and ``load_branch``."""

    async def load(self, session_id: str) -> Session:
        validate_id(session_id)
        return await asyncio.to_thread(self._guard, "load", session_id, self._load_sync)

    def _load_sync(self, path: Path) -> Session:
        session_id = path.name[: -len(SUFFIX)]
        h = self._open(session_id, path, exclusive=False)
        if h is None:
            raise SessionNotFoundError(session_id)
        try:
            data = os.pread(h.fd, h.size, 0)
        finally:
            os.close(h.fd)
        read = _read_clean(data)
        commit, entries = read if read is not None else self._read_careful(path, data)
        try:
            session = session_from_stored(commit["commit"], entries)
        except ValueError as exc:
            raise Corrupt(f"the last commit does not convert: {exc}") from None
        self._check_id(session_id, session.id)
        if commit.get("count") != len(entries):
            raise Corrupt(
                f"the last commit counts {commit.get('count')} entries, found {len(entries)}"
            )
        return session

    def _read_careful(self, path: Path, data: bytes) -> tuple[dict[str, Any], list[Entry]]:
        """The last commit and the committed entries, line by line: drops (with a
        warning) the torn end of an unfinished save, converts what cattrs converts
        (entries of kinds this release does not know included) and names a bad line."""
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with a newline
        committed, pending, commit, bad = _records(lines)
        if commit is None:
            raise Corrupt("no commit record: the file holds no complete save")
        if pending or bad is not None or torn:
            log.warning(
                "dropped the torn end of an unfinished save",
                session_id=path.name[: -len(SUFFIX)],
                file=str(path),
                entries=pending,
            )
        with bulk_decoding():
            return commit, [_entry_at(n, line) for n, line in committed]

    async def load_branch(self, session_id: str, *, tail: int | None = None) -> Session:
        """The active branch from the last compaction (at most ``tail`` entries), read
        backwards from the end of the file: the cost depends on the window, not on the
        session's length."""
        validate_id(session_id)
        if tail is not None and tail < 1:
            raise InvalidArgumentError(f"tail must be at least 1, got {tail}")
        return await asyncio.to_thread(
            self._guard, "load", session_id, lambda p: self._load_branch_sync(p, tail)
        )

    def _load_branch_sync(self, path: Path, tail: int | None) -> Session:
        session_id = path.name[: -len(SUFFIX)]
        h = self._open(session_id, path, exclusive=False)
        if h is None:
            raise SessionNotFoundError(session_id)
        try:
            commit, end, _ = last_commit(h.fd, h.size)
            reader = LineReader(h.fd, end)
            walked: list[tuple[Entry, int]] = []  # (entry, model offset), leaf first
            compaction: CompactionEntry | None = None
            comp_at = -1
            found_kept = False
            off = int(commit["leaf"])
            parent_off = -1
            while off >= 0:
                parent_off, model_off, entry = _entry_record(reader.line(off), off)
                walked.append((entry, model_off))
                if compaction is None and isinstance(entry, CompactionEntry):
                    compaction, comp_at = entry, len(walked) - 1
                elif compaction is not None and entry.id == compaction.first_kept_entry_id:
                    found_kept = True
                    break
                if tail is not None and len(walked) >= tail:
                    break
                off = parent_off
            reached_root = not walked or parent_off < 0
            walked.reverse()
            start = 0
            if compaction is not None and not found_kept and reached_root:
                start = len(walked) - 1 - comp_at
            model = None
            for e, _m in walked[:start]:
                if isinstance(e, ModelChangeEntry):
                    model = e.model
            if model is None and walked and walked[0][1] >= 0:
                mc = _entry_record(reader.line(walked[0][1]), walked[0][1])[2]
                if isinstance(mc, ModelChangeEntry):
                    model = mc.model
        except (ValueError, TypeError, KeyError) as exc:
            raise Corrupt(f"a record does not convert: {exc}") from None
        finally:
            os.close(h.fd)
        kept = [e for e, _m in walked[start:]]
        partial = (
            PartialLoad(kept[0].id if kept else None, model)
            if len(kept) != commit["count"]
            else None
        )
        try:
            session = session_from_stored(commit["commit"], kept, partial=partial)
        except ValueError as exc:
            raise Corrupt(f"a record does not convert: {exc}") from None
        self._check_id(session_id, session.id)
        return session


_COMMIT_RECORD = b'{"commit":'


def _records(
    lines: list[bytes],
) -> tuple[list[tuple[int, bytes]], int, dict[str, Any] | None, int | None]:
    """Sort the lines after the header, by their framing: the (line number, entry JSON)
    of complete saves, how many entry lines follow the last commit, the last commit
    record, and the number of the first line after it that is no record (a torn end;
    such a line before a commit is Corrupt).

    Only the last valid commit is parsed here: an earlier one holds a superseded
    header, and the entries are decoded by the caller.
    """
    entries: list[tuple[int, bytes]] = []
    commits: list[tuple[int, bytes, int]] = []  # (line number, line, entries before it)
    bad: int | None = None
    for n, line in enumerate(lines[1:], start=2):
        parts = split_entry(line)
        if parts is not None:
            entries.append((n, parts[1]))
            continue
        if line.startswith(_COMMIT_RECORD) and line.endswith(b"}"):
            if bad is not None:
                raise Corrupt(f"line {bad} is not a valid record")
            commits.append((n, line, len(entries)))
            continue
        if bad is None:
            bad = n
    while commits:
        n, line, count = commits.pop()
        try:
            commit = loads(line)
        except ValueError:
            commit = None
        if type(commit) is dict and type(commit.get("commit")) is dict:
            return entries[:count], len(entries) - count, commit, bad
        bad = n  # an unreadable last commit: the save it ends did not finish
    return [], len(entries), None, bad


_COMMIT_LINE = b"\n" + _COMMIT_RECORD


_ENTRY_LINE = b'\n{"@":['


def _read_clean(data: bytes) -> tuple[dict[str, Any], list[Entry]] | None:
    """The last commit and the committed entries of a file that ends with a complete
    save and holds only records in the form this release writes, decoded in one call;
    None for any other file (the careful reading handles it)."""
    if not data.endswith(b"\n"):
        return None  # a torn end
    start = data.find(b"\n") + 1  # after the header line
    last = data.rfind(_COMMIT_LINE) + 1
    if last <= start - 1 or data.find(b"\n", last) != len(data) - 1:
        return None  # no commit, or lines after the last one (an unfinished save)
    try:
        commit = loads(data[last:-1])
        with bulk_decoding():
            records = entry_records_from_json_lines(memoryview(data)[start:last], "e")
    except ValueError:
        return None
    if type(commit) is not dict or type(commit.get("commit")) is not dict:
        return None
    entries = [e for e in records if e is not None]
    lines = data.count(b"\n", start, last)
    framed = data.count(_ENTRY_LINE, start - 1, last - 1)
    commits = data.count(_COMMIT_LINE, start - 1, last - 1)
    if len(records) != lines or len(entries) != framed or framed + commits != lines:
        return None  # blank lines, or lines that are neither entry records nor commits
    return commit, entries


def _entry_at(n: int, data: bytes) -> Entry:
    try:
        return entry_from_json(data)
    except ValueError as exc:
        raise Corrupt(f"line {n}: the entry does not convert: {exc}") from None


def _entry_record(line: bytes, off: int) -> tuple[int, int, Entry]:
    """The parent and model offsets and the entry of the entry record at ``off``."""
    parts = split_entry(line)
    if parts is None:
        raise Corrupt(f"offset {off}: not an entry record")
    parent_off, model_off, _flags = (int(x) for x in parts[0].split(b","))
    return parent_off, model_off, entry_from_json(parts[1])


def info_of(header: dict[str, Any]) -> SessionInfo:
    """The listing row of a stored header; Corrupt if it does not convert."""
    try:
        return SessionInfo.of(session_from_stored(header))
    except ValueError as exc:
        raise Corrupt(f"the commit header does not convert: {exc}") from None
