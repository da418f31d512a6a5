"""The session files and their locks: opening (and migrating) a file, the files kept open
between saves, and the plumbing every operation shares."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog

from spectra_core.backend import StoreError, validate_id
from spectra_core.serde import FORMAT_VERSION

from ._format import Corrupt, LineReader, last_commit, parse_header
from ._index import Index
from ._workers import SessionThreads

__all__ = [
    "MAX_OPEN_FILES",
    "MAX_ROWS",
    "SUFFIX",
    "TMP",
    "Files",
    "OpenFile",
    "Tail",
    "datasync",
    "file_stamp",
    "fsync_dir",
    "write_all",
]

_T = TypeVar("_T")
SUFFIX = ".jsonl"
TMP = ".tmp-"
MAX_ROWS = 100_000
datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
log = structlog.get_logger("spectra_fs")


class OpenFile:
    """A locked, open session file."""

    __slots__ = ("fd", "path", "size")

    def __init__(self, fd: int, path: Path, size: int) -> None:
        self.fd, self.path, self.size = fd, path, size


def write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:  # pragma: no cover - the kernel reports errors as OSError
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        offset += n


def file_stamp(st: os.stat_result) -> str:
    """What the listing index remembers of a file to notice it changed: inode and size
    (a session file only grows on its inode, except a torn end cut back to a commit)."""
    return f"{st.st_ino}:{st.st_size}"


class Tail:
    """What a save knows of its session file after writing it, kept with the open file
    for the next save: valid while the file's size is still ``size`` (nobody appended)."""

    __slots__ = ("count", "fd", "incarnation", "ino", "known", "leaf", "size", "version")

    def __init__(
        self,
        fd: int,
        ino: int,
        size: int,
        version: object,
        leaf: int,
        count: int,
        known: dict[str, tuple[int, int, int]],
        incarnation: object = None,
    ) -> None:
        self.fd, self.ino, self.size = fd, ino, size
        self.version, self.leaf, self.count, self.known = version, leaf, count, known
        self.incarnation = incarnation


#: Session files kept open between saves (least recently saved closed first).
MAX_OPEN_FILES = 64


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Files:
    """The store's state and its file plumbing (the other parts of the store build on it)."""

    _dir: Path
    _fsync: bool
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock]
    _paths: dict[str, Path]
    _files: OrderedDict[str, Tail]
    _files_lock: threading.Lock
    _max_open: int
    _token: str
    _rows: dict[str, tuple[dict[str, Any], str]]
    _busy: set[str]
    _threads: SessionThreads
    _index: Index

    def _migrate(self, session_id: str, path: Path, fd: int, fmt: int) -> None:
        """Rewrite an older-format file in the current format (see ``_save``)."""
        raise NotImplementedError

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
            path = self._dir / (validate_id(session_id) + SUFFIX)
            if len(self._paths) >= MAX_ROWS:
                self._paths.clear()
            self._paths[session_id] = path
        return path

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

    def _open(self, session_id: str, path: Path, *, exclusive: bool) -> OpenFile | None:
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
                return OpenFile(fd, path, st.st_size)
            finally:
                if not ok:
                    os.close(fd)

    @staticmethod
    def _check_id(session_id: str, stored: object) -> None:
        if stored != session_id:
            raise Corrupt(f"it holds session {stored!r}, not {session_id!r}")

    def _tmp_path(self, session_id: str) -> Path:
        return self._dir / f"{TMP}{session_id}-{secrets.token_hex(4)}"

    def _locked_tail(self, session_id: str, path: Path) -> Tail | None:
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
            return Tail(
                h.fd,
                os.fstat(h.fd).st_ino,
                end,
                commit["commit"].get("version"),
                int(commit["leaf"]),
                int(commit["count"]),
                {},
                commit["commit"].get("incarnation"),
            )
        except BaseException:
            os.close(h.fd)
            raise

    def _keep_open(self, session_id: str, tail: Tail) -> None:
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
