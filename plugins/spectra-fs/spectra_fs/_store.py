"""FileSystemSessionStore: one append-only JSON Lines file per session."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import secrets
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import structlog

from spectra_core import (
    CompactionEntry,
    ConflictError,
    Entry,
    InvalidArgumentError,
    ModelChangeEntry,
    PartialLoad,
    Session,
    SessionFilter,
    SessionInfo,
    SessionNotFound,
    SessionPage,
    StoreBase,
    StoreError,
    validate_id,
)
from spectra_core.serde import (
    FORMAT_VERSION,
    bulk_decoding,
    entry_from_dict,
    entry_from_json,
    entry_records_from_json_lines,
    entry_to_json,
    header_from_dict,
    header_to_dict,
    loads,
)

from ._format import (
    MODEL_CHANGE,
    Corrupt,
    LineReader,
    encode_commit,
    encode_entry,
    encode_header,
    last_commit,
    parse_header,
    parse_prefix,
    read_legacy,
    split_entry,
)
from ._index import INDEX_NAME, Index
from ._workers import SessionThreads

__all__ = ["Durability", "FileSystemSessionStore", "FsStoreOptions"]

Durability = Literal["fsync", "none"]
_T = TypeVar("_T")
_SUFFIX = ".jsonl"
_TMP = ".tmp-"
_MAX_ROWS = 100_000
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
log = structlog.get_logger("spectra_fs")


@attrs.frozen(kw_only=True)
class FsStoreOptions:
    """Options of the ``fs`` store backend.

    ``directory``: where the session files and the listing index live (created 0700).
    ``durability``: ``"fsync"`` (a save is acknowledged once on disk) or ``"none"`` (once
    in the OS page cache: survives a process crash, not a power loss).
    """

    directory: str = "./sessions"
    durability: Durability = attrs.field(
        default="fsync", validator=attrs.validators.in_(("fsync", "none"))
    )


class _Open:
    """A locked, open session file."""

    __slots__ = ("fd", "path", "size")

    def __init__(self, fd: int, path: Path, size: int) -> None:
        self.fd, self.path, self.size = fd, path, size


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - the kernel reports errors as OSError
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        offset += n


def _stamp(st: os.stat_result) -> str:
    """What the listing index remembers of a file to notice it changed: inode and size
    (a session file only grows on its inode, except a torn end cut back to a commit)."""
    return f"{st.st_ino}:{st.st_size}"


class _Tail:
    """What a save knows of its session file after writing it, kept with the open file
    for the next save: valid while the file's size is still ``size`` (nobody appended)."""

    __slots__ = ("count", "fd", "ino", "known", "leaf", "size", "version")

    def __init__(
        self,
        fd: int,
        ino: int,
        size: int,
        version: object,
        leaf: int,
        count: int,
        known: dict[str, tuple[int, int, int]],
    ) -> None:
        self.fd, self.ino, self.size = fd, ino, size
        self.version, self.leaf, self.count, self.known = version, leaf, count, known


#: Session files kept open between saves (least recently saved closed first).
MAX_OPEN_FILES = 64


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _encode_entries(
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


class FileSystemSessionStore(StoreBase):
    """Sessions as append-only JSON Lines files in ``directory`` (backend ``fs``).

    A save appends the new entries and a commit record under an OS file lock, so several
    processes can share the directory. See docs/stores/fs.md for the format.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, durability: Durability = "fsync"
    ) -> None:
        if durability not in ("fsync", "none"):
            raise InvalidArgumentError(f"durability must be 'fsync' or 'none', got {durability!r}")
        self._dir = Path(directory)
        self._fsync = durability == "fsync"
        self.durability: Durability = durability
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._paths: dict[str, Path] = {}  # path_of's results (a Path costs ~10 µs to make)
        self._files: OrderedDict[str, _Tail] = OrderedDict()
        self._files_lock = threading.Lock()
        self._max_open = MAX_OPEN_FILES
        self._token = uuid.uuid4().hex
        self._rows: dict[str, tuple[dict[str, Any], str]] = {}
        self._busy: set[str] = set()
        self._threads = SessionThreads()  # a session's saves and deletes on one thread
        self._make_dir()
        self._index = Index(self._dir / INDEX_NAME, self._scan, self._stamps, durable=self._fsync)

    @classmethod
    def from_options(cls, options: FsStoreOptions) -> FileSystemSessionStore:
        return cls(options.directory, durability=options.durability)

    @property
    def directory(self) -> Path:
        return self._dir

    def _make_dir(self) -> None:
        missing = []
        d = self._dir.absolute()
        while not d.exists():
            missing.append(d)
            d = d.parent
        try:
            for d in reversed(missing):
                with contextlib.suppress(FileExistsError):
                    d.mkdir(mode=0o700)
                    os.chmod(d, 0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create the session directory {d}: {exc.strerror}; "
                "create it or choose another directory"
            ) from exc
        if not self._dir.is_dir():
            raise StoreError(f"{self._dir} is not a directory; choose another session directory")

    def path_of(self, session_id: str) -> Path:
        """The file of session ``session_id`` (the id is validated first)."""
        path = self._paths.get(session_id)
        if path is None:
            path = self._dir / (validate_id(session_id) + _SUFFIX)
            if len(self._paths) >= _MAX_ROWS:
                self._paths.clear()
            self._paths[session_id] = path
        return path

    # --- plumbing ---------------------------------------------------------------------

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        return lock

    def _failed(self, what: str, session_id: str, path: Path, exc: BaseException) -> StoreError:
        if isinstance(exc, Corrupt):
            return StoreError(
                f"session {session_id!r}: file {path} is not a readable session file: {exc}; "
                "restore it from a backup or move it out of the directory "
                "(other sessions are not affected)"
            )
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return StoreError(
            f"could not {what} session {session_id!r} in {path}: {detail}; "
            "check the directory's permissions and free space"
        )

    def _guard(self, what: str, session_id: str, fn: Callable[[Path], _T]) -> _T:
        path = self.path_of(session_id)
        try:
            return fn(path)
        except (OSError, Corrupt) as exc:
            raise self._failed(what, session_id, path, exc) from exc

    def _open(self, session_id: str, path: Path, *, exclusive: bool) -> _Open | None:
        """Open and lock the session's file (``None`` if there is none), migrating an
        older format first. Raises Corrupt for a foreign or future file."""
        while True:
            try:
                fd = os.open(path, (os.O_RDWR if exclusive else os.O_RDONLY) | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            ok = False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                st = os.fstat(fd)
                if st.st_nlink == 0:  # deleted or replaced while we waited: reopen
                    continue
                if st.st_size == 0:
                    raise Corrupt("the file is empty (missing session header)")
                fmt, _ = parse_header(LineReader(fd, st.st_size).line(0))
                if fmt > FORMAT_VERSION:
                    raise Corrupt(
                        f"it has format {fmt}, newer than this release reads "
                        f"({FORMAT_VERSION}); upgrade spectra-fs"
                    )
                if fmt < FORMAT_VERSION:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    if os.fstat(fd).st_nlink:
                        self._migrate(session_id, path, fd, fmt)
                    continue
                ok = True
                return _Open(fd, path, st.st_size)
            finally:
                if not ok:
                    os.close(fd)

    def _migrate(self, session_id: str, path: Path, fd: int, fmt: int) -> None:
        """Rewrite an older-format file in the current format (under the exclusive lock)."""
        size = os.fstat(fd).st_size
        header, raw = read_legacy(fmt, os.pread(fd, size, 0), "file")
        try:
            entries = [entry_from_dict(d) for d in raw]
            fields = _fields(header)
        except (ValueError, TypeError, KeyError) as exc:
            raise Corrupt(f"format {fmt} data does not convert: {exc}") from None
        session = Session(**fields, entries=entries, saved_count=len(entries))
        self._check_id(session_id, session.id)
        head = encode_header(_header(session))
        body, offsets = _encode_entries(len(head), entries, _missing_parent)
        leaf = -1 if session.leaf_id is None else offsets[session.leaf_id][0]
        data = head + body + encode_commit(_header(session), leaf, len(entries))
        tmp = self._tmp_path(session_id)
        tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(tfd, 0o600)
            _write_all(tfd, data, 0)
            os.fsync(tfd)
            os.replace(tmp, path)
        finally:
            os.close(tfd)
            tmp.unlink(missing_ok=True)
        _fsync_dir(self._dir)
        log.info("migrated session file", session_id=session_id, file=str(path), from_format=fmt)

    @staticmethod
    def _check_id(session_id: str, stored: object) -> None:
        if stored != session_id:
            raise Corrupt(f"it holds session {stored!r}, not {session_id!r}")

    def _tmp_path(self, session_id: str) -> Path:
        return self._dir / f"{_TMP}{session_id}-{secrets.token_hex(4)}"

    # --- load -------------------------------------------------------------------------

    async def load(self, session_id: str) -> Session:
        validate_id(session_id)
        return await asyncio.to_thread(self._guard, "load", session_id, self._load_sync)

    def _load_sync(self, path: Path) -> Session:
        session_id = path.name[: -len(_SUFFIX)]
        h = self._open(session_id, path, exclusive=False)
        if h is None:
            raise SessionNotFound(session_id)
        try:
            data = os.pread(h.fd, h.size, 0)
        finally:
            os.close(h.fd)
        read = _read_clean(data)
        commit, entries = read if read is not None else self._read_careful(path, data)
        try:
            fields = _fields(commit["commit"])
        except (ValueError, TypeError, KeyError) as exc:
            raise Corrupt(f"the last commit does not convert: {exc}") from None
        self._check_id(session_id, fields.get("id"))
        if commit.get("count") != len(entries):
            raise Corrupt(
                f"the last commit counts {commit.get('count')} entries, found {len(entries)}"
            )
        return Session(**fields, entries=entries, saved_count=len(entries))

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
                session_id=path.name[: -len(_SUFFIX)],
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
        session_id = path.name[: -len(_SUFFIX)]
        h = self._open(session_id, path, exclusive=False)
        if h is None:
            raise SessionNotFound(session_id)
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
            fields = _fields(commit["commit"])
        except (ValueError, TypeError, KeyError) as exc:
            raise Corrupt(f"a record does not convert: {exc}") from None
        finally:
            os.close(h.fd)
        self._check_id(session_id, fields.get("id"))
        kept = [e for e, _m in walked[start:]]
        partial = (
            PartialLoad(kept[0].id if kept else None, model)
            if len(kept) != commit["count"]
            else None
        )
        return Session(**fields, entries=kept, partial=partial, saved_count=len(kept))

    # --- save -------------------------------------------------------------------------

    async def save(self, session: Session) -> None:
        validate_id(session.id)
        async with self._lock(session.id):
            version = await self._threads.run(
                session.id, self._guard, "save", session.id, lambda p: self._save_sync(p, session)
            )
        session.mark_saved(version)

    def _save_sync(self, path: Path, session: Session) -> int:
        header = _header(session)
        version = session.version + 1
        header["version"] = version
        new = list(session.unsaved_entries)
        if session.version == 0:
            info = attrs.evolve(SessionInfo.of(session), version=version)
            self._create(path, session, header, new, info)
        else:
            self._append(path, session, header, new)
        return version

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
        body, offsets = _encode_entries(len(head), new, _missing_parent)
        hit = None if session.leaf_id is None else offsets.get(session.leaf_id)
        leaf = -1 if hit is None else hit[0]
        data = head + body + encode_commit(header, leaf, len(new))
        tmp = self._tmp_path(session.id)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # marks the creation as in progress
            os.fchmod(fd, 0o600)
            _write_all(fd, data, 0)
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
                _fsync_dir(self._dir)
            stamp = _stamp(os.fstat(fd))
        finally:
            os.close(fd)
            tmp.unlink(missing_ok=True)
        self._finish(token, session.id, info, stamp)

    def _append(
        self,
        path: Path,
        session: Session,
        header: dict[str, Any],
        new: list[Entry],
    ) -> None:
        tail = self._locked_tail(session.id, path)
        if tail is None:
            raise ConflictError(session.id, session.version, None)
        fd, end = tail.fd, tail.size
        keep = False
        try:
            if tail.version != session.version:
                stored = tail.version
                raise ConflictError(
                    session.id, session.version, stored if isinstance(stored, int) else None
                )
            locator = _Locator(LineReader(fd, end), tail.leaf, end, tail.known)
            body, lines = _encode_entries(end, new, locator.find)
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
                _write_all(fd, bytes(body), end)
                if self._fsync:
                    _datasync(fd)
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

    def _locked_tail(self, session_id: str, path: Path) -> _Tail | None:
        """The session's file under the exclusive lock and its last commit (``None``: no
        file). The file kept open since this store's last save is reused when it is still
        linked and nobody changed its size since; otherwise the file is (re)opened and
        its last commit read from the end (cutting a torn end back to it)."""
        with self._files_lock:
            tail = self._files.pop(session_id, None)
        if tail is not None:
            try:
                fcntl.flock(tail.fd, fcntl.LOCK_EX)
                st = os.fstat(tail.fd)
            except BaseException:
                os.close(tail.fd)
                raise
            if st.st_nlink and st.st_size == tail.size:
                return tail
            os.close(tail.fd)  # deleted, replaced or appended to by another process
        h = self._open(session_id, path, exclusive=True)
        if h is None:
            return None
        try:
            commit, end, _ = last_commit(h.fd, h.size)
            if end != h.size:
                log.warning(
                    "truncating the torn end of an unfinished save",
                    session_id=session_id,
                    file=str(path),
                    bytes=h.size - end,
                )
                os.ftruncate(h.fd, end)
            return _Tail(
                h.fd,
                os.fstat(h.fd).st_ino,
                end,
                commit["commit"].get("version"),
                int(commit["leaf"]),
                int(commit["count"]),
                {},
            )
        except BaseException:
            os.close(h.fd)
            raise

    def _keep_open(self, session_id: str, tail: _Tail) -> None:
        with self._files_lock:
            self._files[session_id] = tail
            extra = (
                [
                    self._files.popitem(last=False)[1]
                    for _ in range(len(self._files) - self._max_open)
                ]
                if len(self._files) > self._max_open
                else []
            )
        for old in extra:
            os.close(old.fd)

    def _forget_open(self, session_id: str | None = None) -> None:
        """Close the kept-open file of ``session_id`` (``None``: all of them)."""
        with self._files_lock:
            if session_id is None:
                tails = list(self._files.values())
                self._files.clear()
            else:
                tail = self._files.pop(session_id, None)
                tails = [] if tail is None else [tail]
        for tail in tails:
            os.close(tail.fd)

    # A session's appends by this store share one pending marker, ``<store token>-<id>``,
    # inserted before the first append and left in place: ``list`` re-reads the sessions
    # with markers, and for this store's own it uses the row remembered of the last save
    # (``_rows``) when the file's stamp still matches it.

    def _marker(self, session_id: str) -> str:
        return f"{self._token}-{session_id}"

    def _begin_save(self, session_id: str) -> str:
        with self._files_lock:
            self._busy.add(session_id)
        return self._marker(session_id)

    def _end_save(self, session_id: str, row: tuple[dict[str, Any], str] | None) -> None:
        """``row``: the session's header and file stamp after a completed append."""
        with self._files_lock:
            self._busy.discard(session_id)
            if row is not None:
                self._rows[session_id] = row
                if len(self._rows) > _MAX_ROWS:  # forgotten rows are re-read from files
                    del self._rows[next(iter(self._rows))]

    def _stored_version(self, path: Path) -> int | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            commit, _, _ = last_commit(fd, os.fstat(fd).st_size)
            v = commit["commit"].get("version")
            return v if isinstance(v, int) else None
        except (OSError, Corrupt):
            return None
        finally:
            os.close(fd)

    def _finish(
        self, token: str, session_id: str, info: SessionInfo | None, stamp: str = ""
    ) -> None:
        """Update the listing row; the change itself is already committed, so an index
        failure is only logged (the pending marker makes ``list`` repair the row)."""
        try:
            self._index.finish(token, session_id, info, stamp)
        except StoreError as exc:
            log.warning("listing index not updated", session_id=session_id, error=str(exc))

    def _cancel(self, token: str) -> None:
        try:
            self._index.cancel(token)
        except StoreError as exc:
            log.warning("pending marker not cleared", error=str(exc))

    # --- delete -----------------------------------------------------------------------

    async def delete(self, session_id: str) -> None:
        validate_id(session_id)
        async with self._lock(session_id):
            await self._threads.run(
                session_id, self._guard, "delete", session_id, self._delete_sync
            )

    def _delete_sync(self, path: Path) -> None:
        session_id = path.name[: -len(_SUFFIX)]
        self._forget_open(session_id)
        with self._files_lock:
            self._rows.pop(session_id, None)
        try:  # a link is not one of our files: never follow it out of the directory
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Corrupt("it is a symbolic link, which the store does not follow") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            if st.st_nlink == 0:
                raise SessionNotFound(session_id)
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
                _fsync_dir(self._dir)
            self._finish(token, session_id, None)
        finally:
            os.close(fd)

    # --- listing ----------------------------------------------------------------------

    async def list(self, filter: SessionFilter | None = None) -> SessionPage:
        flt = filter or SessionFilter()
        return await asyncio.to_thread(self._list_sync, flt)

    def _list_sync(self, flt: SessionFilter) -> SessionPage:
        for token, session_id in self._index.pending():
            self._reconcile(token, session_id)
        return self._index.list(flt)

    def _reconcile(self, token: str, session_id: str) -> None:
        """Repair the row of a session whose change may have been cut short."""
        try:
            path = self.path_of(session_id)
        except InvalidArgumentError:
            self._index.cancel(token)
            return
        for tmp in self._dir.glob(f"{_TMP}{session_id}-*"):
            if self._creation_in_progress(tmp):
                return
        try:
            h = self._open(session_id, path, exclusive=False)
        except (OSError, Corrupt) as exc:
            log.warning(
                "cannot re-read session for the index", session_id=session_id, error=str(exc)
            )
            self._index.cancel(token)
            return
        if h is None:
            self._index.finish(token, session_id, None)
            return
        try:
            stamp = _stamp(os.fstat(h.fd))
            with self._files_lock:
                known = self._rows.get(session_id) if token == self._marker(session_id) else None
            # Under the shared lock no append runs: a matching stamp means the file is
            # as this store's last save left it.
            if known is not None and known[1] == stamp:
                info = _info_of(known[0])
            else:
                info = self._info(h.fd, h.size)
            self._index.finish(token, session_id, info, stamp)
            with self._files_lock:
                if self._rows.get(session_id, (None, None))[1] == stamp:
                    del self._rows[session_id]
        except (OSError, Corrupt) as exc:
            log.warning(
                "cannot re-read session for the index", session_id=session_id, error=str(exc)
            )
            self._index.cancel(token)
        finally:
            os.close(h.fd)

    @staticmethod
    def _creation_in_progress(tmp: Path) -> bool:
        """Whether a live process still creates from ``tmp``; a dead one's leftover is removed."""
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        return False

    @staticmethod
    def _info(fd: int, size: int) -> SessionInfo:
        commit, _, _ = last_commit(fd, size)
        return _info_of(commit["commit"])

    def _stamps(self) -> dict[str, str]:
        """Every session file's stamp, from ``stat`` alone (no file is read)."""
        stamps: dict[str, str] = {}
        with os.scandir(self._dir) as it:
            for item in it:
                if not item.name.endswith(_SUFFIX):
                    continue
                session_id = item.name[: -len(_SUFFIX)]
                try:
                    validate_id(session_id)
                    stamps[session_id] = _stamp(item.stat())
                except (InvalidArgumentError, FileNotFoundError):
                    continue
        return stamps

    def _scan(self) -> Iterator[tuple[SessionInfo, str]]:
        """Every session's info and stamp, read from the files without locks (rebuilds)."""
        for path in sorted(self._dir.glob(f"*{_SUFFIX}")):
            session_id = path.name[: -len(_SUFFIX)]
            try:
                validate_id(session_id)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (InvalidArgumentError, FileNotFoundError):
                continue
            except OSError as exc:
                log.warning("session file not indexed", file=str(path), error=str(exc))
                continue
            try:
                st = os.fstat(fd)
                size = st.st_size
                fmt, _ = parse_header(LineReader(fd, size).line(0)) if size else (-1, None)
                if fmt == FORMAT_VERSION:
                    info = self._info(fd, size)
                elif 0 <= fmt < FORMAT_VERSION:
                    header, _e = read_legacy(fmt, os.pread(fd, size, 0), "file")
                    info = SessionInfo.of(Session(**_fields(header)))
                else:
                    raise Corrupt(f"unsupported format {fmt}")
                self._check_id(session_id, info.id)
            except (OSError, Corrupt, ValueError, TypeError, KeyError) as exc:
                log.warning("session file not indexed", file=str(path), error=str(exc))
                continue
            finally:
                os.close(fd)
            yield info, _stamp(st)

    async def rebuild_index(self) -> int:
        """Rebuild the listing index from the session files; returns the sessions indexed."""
        return await asyncio.to_thread(self._index.rebuild)

    # --- lifecycle --------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise StoreError unless the directory exists and the index opens."""
        if not self._dir.is_dir():
            raise StoreError(f"session directory {self._dir} does not exist")
        await asyncio.to_thread(self._index.pending)

    async def aclose(self) -> None:
        self._forget_open()
        await asyncio.to_thread(self._close_sync)
        self._threads.shutdown()

    def _close_sync(self) -> None:
        with self._files_lock:
            saved = [s for s in self._rows if s not in self._busy]
        try:  # a clean close brings the rows of this store's appends up to date
            for session_id in saved:
                self._reconcile(self._marker(session_id), session_id)
        except StoreError as exc:
            log.warning("listing index not brought up to date", error=str(exc))
        self._index.close()


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


def _missing_parent(entry_id: str) -> tuple[int, int, int]:
    raise Corrupt(f"entry {entry_id!r} has a parent that is not in the session")


def _header(session: Session) -> dict[str, Any]:
    """The stored header: everything but the entries and the in-memory ``partial`` mark."""
    header = header_to_dict(session)
    header.pop("partial", None)
    return header


def _info_of(header: dict[str, Any]) -> SessionInfo:
    try:
        fields = _fields(header)
    except (ValueError, TypeError, KeyError) as exc:
        raise Corrupt(f"the commit header does not convert: {exc}") from None
    return SessionInfo.of(Session(**fields))


def _fields(header: dict[str, Any]) -> dict[str, Any]:
    fields = header_from_dict(header)
    fields.pop("partial", None)
    return fields
