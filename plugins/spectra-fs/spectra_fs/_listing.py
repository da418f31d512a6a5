"""The listing side of the store: pending markers around each change, repairing the rows
of sessions whose change may have been cut short, and scanning the files to rebuild."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import structlog

from spectra_core.backend import (
    InvalidArgumentError,
    SessionFilter,
    SessionInfo,
    SessionPage,
    StoreError,
    validate_id,
)
from spectra_core.serde import FORMAT_VERSION

from ._files import MAX_ROWS, SUFFIX, TMP, Files, file_stamp
from ._format import Corrupt, LineReader, last_commit, parse_header, read_legacy
from ._load import info_of

__all__ = ["Listing"]

log = structlog.get_logger("spectra_fs")


class Listing(Files):
    """``list``, ``rebuild_index`` and the pending markers saves and deletes leave."""

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
                if len(self._rows) > MAX_ROWS:  # forgotten rows are re-read from files
                    del self._rows[next(iter(self._rows))]

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
        for tmp in self._dir.glob(f"{TMP}{session_id}-*"):
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
            stamp = file_stamp(os.fstat(h.fd))
            with self._files_lock:
                known = self._rows.get(session_id) if token == self._marker(session_id) else None
            # Under the shared lock no append runs: a matching stamp means the file is
            # as this store's last save left it.
            if known is not None and known[1] == stamp:
                info = info_of(known[0])
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
    def _info(fd: int, size: int) -> SessionInfo:
        commit, _, _ = last_commit(fd, size)
        return info_of(commit["commit"])

    def _stamps(self) -> dict[str, str]:
        """Every session file's stamp, from ``stat`` alone (no file is read)."""
        stamps: dict[str, str] = {}
        with os.scandir(self._dir) as it:
            for item in it:
                if not item.name.endswith(SUFFIX):
                    continue
                session_id = item.name[: -len(SUFFIX)]
                try:
                    validate_id(session_id)
                    stamps[session_id] = file_stamp(item.stat())
                except (InvalidArgumentError, FileNotFoundError):
                    continue
        return stamps

    def _scan(self) -> Iterator[tuple[SessionInfo, str]]:
        """Every session's info and stamp, read from the files without locks (rebuilds)."""
        for path in sorted(self._dir.glob(f"*{SUFFIX}")):
            session_id = path.name[: -len(SUFFIX)]
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
                    info = info_of(header)
                else:
                    raise Corrupt(f"unsupported format {fmt}")
                self._check_id(session_id, info.id)
            except (OSError, Corrupt, ValueError, TypeError, KeyError) as exc:
                log.warning("session file not indexed", file=str(path), error=str(exc))
                continue
            finally:
                os.close(fd)
            yield info, file_stamp(st)

    async def rebuild_index(self) -> int:
        """Rebuild the listing index from the session files; returns the sessions indexed."""
        return await asyncio.to_thread(self._index.rebuild)
