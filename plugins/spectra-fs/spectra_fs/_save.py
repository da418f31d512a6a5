"""Writing a session file: creating it (written aside, then linked), appending entries and
a commit record under the exclusive lock, migrating an older format, deleting."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import structlog

from spectra_core.backend import (
    ConflictError,
    Entry,
    ModelChangeEntry,
    PendingSave,
    Session,
    SessionInfo,
    SessionNotFoundError,
    entry_from_dict,
    entry_to_json,
    prepare_save,
    session_from_stored,
    validate_id,
)
from spectra_core.serde import header_to_dict

from . import _files as file_io
from ._files import SUFFIX, datasync, file_stamp, fsync_dir
from ._format import (
    MODEL_CHANGE,
    Corrupt,
    LineReader,
    encode_commit,
    encode_entry,
    encode_header,
    parse_header,
    parse_prefix,
    read_legacy,
)
from ._listing import Listing

__all__ = ["Saving"]

log = structlog.get_logger("spectra_fs")


class _Locator:
    """Finds existing entry lines (offset, flags, model offset) by entry id."""

    def __init__(
        self,
        reader: LineReader,
        leaf_off: int,
        committed_end: int,
        known: dict[str, tuple[int, int, int]] | None = None,
    ) -> None:
        self._reader = reader
        self._leaf_off = leaf_off
        self._end = committed_end
        self._known: dict[str, tuple[int, int, int]] = dict(known) if known else {}
        self._scanned = False

    def find(self, entry_id: str) -> tuple[int, int, int]:
        hit = self._known.get(entry_id)
        if hit is not None:
            return hit
        off = self._leaf_off  # usually an ancestor of the stored leaf: walk up to it
        while off >= 0:
            p = parse_prefix(self._reader.line(off), f"offset {off}")
            self._known[p.entry_id] = (off, p.flags, p.model_off)
            if p.entry_id == entry_id:
                return off, p.flags, p.model_off
            off = p.parent_off
        if not self._scanned:  # another branch: read every line once
            self._scanned = True
            data = os.pread(self._reader.fd, self._end, 0)
            pos = data.index(b"\n") + 1
            while pos < len(data):
                nl = data.index(b"\n", pos)
                if data.startswith(b'{"@"', pos):
                    p = parse_prefix(data[pos:nl], f"offset {pos}")
                    self._known[p.entry_id] = (pos, p.flags, p.model_off)
                pos = nl + 1
            hit = self._known.get(entry_id)
            if hit is not None:
                return hit
        raise Corrupt(f"entry {entry_id!r} is referenced but not in the file")


def encode_entries(
    base: int, entries: list[Entry], find: Callable[[str], tuple[int, int, int]]
) -> tuple[bytearray, dict[str, tuple[int, int, int]]]:
    """The lines of ``entries`` written at offset ``base``, and each new entry's
    (offset, flags, model offset)."""
    out = bytearray()
    lines: dict[str, tuple[int, int, int]] = {}
    for e in entries:
        if e.parent_id is None:
            p, m = -1, -1
        else:
            hit = lines.get(e.parent_id)
            p, pflags, pm = hit if hit is not None else find(e.parent_id)
            m = p if pflags & MODEL_CHANGE else pm
        flags = MODEL_CHANGE if isinstance(e, ModelChangeEntry) else 0
        lines[e.id] = (base + len(out), flags, m)
        out += encode_entry(entry_to_json(e), p, m, flags)
    return out, lines


class Saving(Listing):
    """``save`` and ``delete`` (and the migration of an older file, on open)."""

    def _migrate(self, session_id: str, path: Path, fd: int, fmt: int) -> None:
        """Rewrite an older-format file in the current format (under the exclusive lock)."""
        size = os.fstat(fd).st_size
        header, raw = read_legacy(fmt, os.pread(fd, size, 0), "file")
        try:
            entries = [entry_from_dict(d) for d in raw]
            session = session_from_stored(header, entries)
        except (ValueError, TypeError, KeyError) as exc:
            raise Corrupt(f"format {fmt} data does not convert: {exc}") from None
        self._check_id(session_id, session.id)
        head = encode_header(header_of(session))
        body, offsets = encode_entries(len(head), entries, missing_parent)
        leaf = -1 if session.leaf_id is None else offsets[session.leaf_id][0]
        data = head + body + encode_commit(header_of(session), leaf, len(entries))
        tmp = self._tmp_path(session_id)
        tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(tfd, 0o600)
            file_io.write_all(tfd, data, 0)
            os.fsync(tfd)
            os.replace(tmp, path)
        finally:
            os.close(tfd)
            tmp.unlink(missing_ok=True)
        fsync_dir(self._dir)
        log.info("migrated session file", session_id=session_id, file=str(path), from_format=fmt)

    async def save(self, session: Session) -> None:
        validate_id(session.id)
        async with self._lock(session.id):
            pending = await self._threads.run(
                session.id, self._guard, "save", session.id, lambda p: self._save_sync(p, session)
            )
        pending.done()

    def _save_sync(self, path: Path, session: Session) -> PendingSave:
        pending = prepare_save(session)
        header = pending.header()
        if pending.creating:
            info = attrs.evolve(SessionInfo.of(session), version=pending.version)
            self._create(path, session, header, pending.new_entries, info)
        else:
            self._append(path, pending, header)
        return pending

    def _create(
        self,
        path: Path,
        session: Session,
        header: dict[str, Any],
        new: list[Entry],
        info: SessionInfo,
    ) -> None:
        if path.exists():
            raise ConflictError(session.id, 0, self._stored_version(path))
        head = encode_header(header)
        body, offsets = encode_entries(len(head), new, missing_parent)
        hit = None if session.leaf_id is None else offsets.get(session.leaf_id)
        leaf = -1 if hit is None else hit[0]
        data = head + body + encode_commit(header, leaf, len(new))
        tmp = self._tmp_path(session.id)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # marks the creation as in progress
            os.fchmod(fd, 0o600)
            file_io.write_all(fd, data, 0)
            if self._fsync:
                os.fsync(fd)
            token = self._index.begin(session.id)
            try:
                os.link(tmp, path)
            except FileExistsError:
                self._cancel(token)
                raise ConflictError(session.id, 0, self._stored_version(path)) from None
            except BaseException:
                self._cancel(token)
                raise
            tmp.unlink()
            if self._fsync:
                fsync_dir(self._dir)
            stamp = file_stamp(os.fstat(fd))
        finally:
            os.close(fd)
            tmp.unlink(missing_ok=True)
        self._finish(token, session.id, info, stamp)

    def _append(self, path: Path, pending: PendingSave, header: dict[str, Any]) -> None:
        session, new = pending.session, pending.new_entries
        tail = self._locked_tail(session.id, path)
        if tail is None:
            raise ConflictError(session.id, session.version, None)
        fd, end = tail.fd, tail.size
        keep = False
        try:
            stored, incarnation = tail.version, tail.incarnation
            pending.check(
                stored if isinstance(stored, int) else None,
                incarnation if isinstance(incarnation, str) else None,
            )
            locator = _Locator(LineReader(fd, end), tail.leaf, end, tail.known)
            body, lines = encode_entries(end, new, locator.find)
            if session.leaf_id is None:
                leaf = -1
            elif session.leaf_id in lines:
                leaf = lines[session.leaf_id][0]
            else:
                leaf = locator.find(session.leaf_id)[0]
            count = tail.count + len(new)
            body += encode_commit(header, leaf, count)
            size = end + len(body)
            # A pending marker before the file changes: if the process dies after the
            # append, ``list`` re-reads the session (the row is brought up to date there).
            token = self._begin_save(session.id)
            try:
                self._index.ensure_marker(token, session.id)
                file_io.write_all(fd, bytes(body), end)
                if self._fsync:
                    datasync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)  # the session stays as it was
                self._end_save(session.id, None)
                raise
            self._end_save(session.id, (header, f"{tail.ino}:{size}"))
            tail.size, tail.version, tail.leaf, tail.count, tail.known = (
                size,
                header["version"],
                leaf,
                count,
                lines,
            )
            fcntl.flock(fd, fcntl.LOCK_UN)
            keep = True
        finally:
            if keep:
                self._keep_open(session.id, tail)
            else:
                os.close(fd)

    async def delete(self, session_id: str) -> None:
        validate_id(session_id)
        async with self._lock(session_id):
            await self._threads.run(
                session_id, self._guard, "delete", session_id, self._delete_sync
            )

    def _delete_sync(self, path: Path) -> None:
        session_id = path.name[: -len(SUFFIX)]
        self._forget_open(session_id)
        with self._files_lock:
            self._rows.pop(session_id, None)
        try:  # a link is not one of our files: never follow it out of the directory
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise SessionNotFoundError(session_id) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Corrupt("it is a symbolic link, which the store does not follow") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            if st.st_nlink == 0:
                raise SessionNotFoundError(session_id)
            if st.st_size == 0:  # only what starts with a session header is deleted
                raise Corrupt("the file is empty (missing session header)")
            parse_header(LineReader(fd, st.st_size).line(0))
            token = self._index.begin(session_id)
            try:
                path.unlink()
            except BaseException:
                self._cancel(token)
                raise
            if self._fsync:
                fsync_dir(self._dir)
            self._finish(token, session_id, None)
        finally:
            os.close(fd)


def missing_parent(entry_id: str) -> tuple[int, int, int]:
    raise Corrupt(f"entry {entry_id!r} has a parent that is not in the session")


def header_of(session: Session) -> dict[str, Any]:
    """The stored header: everything but the entries and the in-memory ``partial`` mark."""
    header = header_to_dict(session)
    header.pop("partial", None)
    return header
