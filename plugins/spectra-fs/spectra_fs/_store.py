"""FileSystemSessionStore: one append-only JSON Lines file per session.

The store is put together from its parts: the files and their locks (``_files``), load
(``_load``), save and delete (``_save``) and the listing index's side (``_listing``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import attrs
import structlog

from spectra_core.backend import InvalidArgumentError, StoreBase, StoreError

from ._files import MAX_OPEN_FILES, Tail
from ._index import INDEX_NAME, Index
from ._load import Loading
from ._load import _read_clean as _read_clean  # (the tests compare it with the careful read)
from ._save import Saving
from ._workers import SessionThreads

__all__ = ["MAX_OPEN_FILES", "Durability", "FileSystemSessionStore", "FsStoreOptions"]

Durability = Literal["fsync", "none"]
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


class FileSystemSessionStore(Saving, Loading, StoreBase):
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
        self._files: OrderedDict[str, Tail] = OrderedDict()
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
