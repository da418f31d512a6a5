"""The on-disk form of one session file, and the migrations from older formats.

Format 1 is JSON Lines, one record per line, in three kinds::

    {"spectra":"session","format":1,"session":{...header at creation...}}   first line
    {"@":[parent_off,model_off,flags],"e":{...entry...}}                    one per entry
    {"commit":{...header...},"leaf":leaf_off,"count":n}                     ends each save

``parent_off`` is the byte offset of the parent's line (-1 for a root), ``model_off`` the
offset of the nearest model-change ancestor's line (-1: none), ``flags`` bit 0 marks a
model change. A commit carries the whole header (version, leaf, updated_at, config), the
offset of the leaf's line and the number of committed entries; the last commit wins and
entry lines after it belong to a save that never finished.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from spectra_core.serde import FORMAT_VERSION, dumps, loads

__all__ = [
    "FORMAT_VERSION",
    "MODEL_CHANGE",
    "UPGRADES",
    "Corrupt",
    "LineReader",
    "Prefix",
    "encode_commit",
    "encode_entry",
    "encode_header",
    "last_commit",
    "parse_header",
    "parse_prefix",
    "read_legacy",
    "split_entry",
]

MODEL_CHANGE = 1
_FIRST_BLOCK = 8 * 1024  # reads start small and double, up to _MAX_BLOCK
_MAX_BLOCK = 1024 * 1024
_SLACK = 2 * 1024
_COMMIT = b'{"commit":'
_PREFIX_RE = re.compile(
    rb'\{"@":\[(-?\d+),(-?\d+),(\d+)\],"e":\{"type":"(?:[^"\\]|\\.)*","id":"((?:[^"\\]|\\.)*)"'
)


class Corrupt(Exception):
    """The file is not a well-formed session file; the message says where."""


def encode_header(header: dict[str, Any]) -> bytes:
    return (
        dumps({"spectra": "session", "format": FORMAT_VERSION, "session": header}) + "\n"
    ).encode()


def encode_entry(entry_json: str, parent_off: int, model_off: int, flags: int) -> bytes:
    return f'{{"@":[{parent_off},{model_off},{flags}],"e":{entry_json}}}\n'.encode()


def encode_commit(header: dict[str, Any], leaf_off: int, count: int) -> bytes:
    return (dumps({"commit": header, "leaf": leaf_off, "count": count}) + "\n").encode()


_ENTRY_HEAD = b'{"@":['
_ENTRY_SPLIT = b'],"e":'


def split_entry(line: bytes) -> tuple[bytes, bytes] | None:
    """An entry record's ``@`` numbers (``b"12,-1,0"``) and its entry's JSON, cut along
    the framing :func:`encode_entry` writes, without parsing; None for any other line."""
    if not line.startswith(_ENTRY_HEAD) or not line.endswith(b"}"):
        return None
    k = line.find(_ENTRY_SPLIT, len(_ENTRY_HEAD))
    if k < 0:
        return None
    return line[len(_ENTRY_HEAD) : k], line[k + len(_ENTRY_SPLIT) : -1]


def _loads(line: bytes, where: str) -> Any:
    try:
        return loads(line)
    except ValueError as exc:
        raise Corrupt(f"{where}: not valid JSON ({exc})") from None


def parse_header(line: bytes) -> tuple[int, dict[str, Any]]:
    """The format version and the header object of a file's first line."""
    obj = _loads(line, "line 1")
    if isinstance(obj, dict) and obj.get("spectra") == "session":
        fmt = obj.get("format")
        if not isinstance(fmt, int) or not isinstance(obj.get("session"), dict):
            raise Corrupt("line 1: session header without an integer 'format' and a 'session'")
        return fmt, obj
    if isinstance(obj, dict) and "id" in obj and "created_at" in obj and "type" not in obj:
        return 0, obj  # format 0: the bare session header, see read_legacy
    raise Corrupt("line 1: missing session header (the file does not start with one)")


class Prefix:
    """What the start of an entry line tells without parsing the entry."""

    __slots__ = ("entry_id", "flags", "model_off", "parent_off")

    def __init__(self, parent_off: int, model_off: int, flags: int, entry_id: str) -> None:
        self.parent_off, self.model_off, self.flags, self.entry_id = (
            parent_off,
            model_off,
            flags,
            entry_id,
        )


def parse_prefix(line: bytes, where: str) -> Prefix:
    m = _PREFIX_RE.match(line)
    if m is not None:
        raw_id = m.group(4)
        entry_id = raw_id.decode() if b"\\" not in raw_id else json.loads(b'"' + raw_id + b'"')
        return Prefix(int(m.group(1)), int(m.group(2)), int(m.group(3)), entry_id)
    obj = _loads(line, where)
    try:
        p, mo, f = obj["@"]
        return Prefix(int(p), int(mo), int(f), str(obj["e"]["id"]))
    except (KeyError, TypeError, ValueError):
        raise Corrupt(f"{where}: not an entry record") from None


class LineReader:
    """Reads whole lines at byte offsets through a cache that favours walking backwards.

    ``bytes_read`` counts what was read from the file.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.bytes_read = 0
        self._lo = 0
        self._buf = b""
        self._block = _FIRST_BLOCK

    def _pread(self, n: int, off: int) -> bytes:
        data = os.pread(self.fd, n, off)
        self.bytes_read += len(data)
        return data

    def line(self, off: int) -> bytes:
        """The line starting at ``off``, without its newline."""
        if not 0 <= off < self.size:
            raise Corrupt(f"offset {off} is outside the committed data")
        lo, buf = self._lo, self._buf
        if lo <= off < lo + len(buf):
            j = buf.find(b"\n", off - lo)
            if j >= 0:
                return buf[off - lo : j]
        start = max(0, off + _SLACK - self._block)
        block = self._pread(min(self._block, self.size - start), start)
        self._block = min(2 * self._block, _MAX_BLOCK)
        self._lo, self._buf = start, block
        j = block.find(b"\n", off - start)
        if j >= 0:
            return block[off - start : j]
        parts = [block[off - start :]]
        pos = start + len(block)
        while pos < self.size:
            chunk = self._pread(min(max(self._block, pos - off), self.size - pos), pos)
            if not chunk:
                break
            k = chunk.find(b"\n")
            if k >= 0:
                parts.append(chunk[:k])
                return b"".join(parts)
            parts.append(chunk)
            pos += len(chunk)
        raise Corrupt(f"the line at offset {off} has no end")


def last_commit(fd: int, size: int) -> tuple[dict[str, Any], int, int]:
    """The last complete commit record, the offset just after it and the bytes read.

    Reads backwards from the end, so the cost depends on the size of the last save (plus
    any torn tail), not on the length of the session.
    """
    buf = b""
    buf_start = size
    read = 0
    block = _FIRST_BLOCK // 2

    def grow() -> bool:
        nonlocal buf, buf_start, read, block
        if buf_start == 0:
            return False
        block = min(2 * block, _MAX_BLOCK)
        start = max(0, buf_start - block)
        chunk = os.pread(fd, buf_start - start, start)
        read += len(chunk)
        buf, buf_start = chunk + buf, start
        return True

    def newline_before(cursor: int) -> int:
        """Absolute offset of the last newline before ``cursor``, or -1."""
        while True:
            i = buf.rfind(b"\n", 0, cursor - buf_start)
            if i >= 0:
                return buf_start + i
            if not grow():
                return -1

    cursor = size
    end = newline_before(cursor)  # a last line without a newline is torn: skipped
    while end >= 0:
        start = newline_before(end) + 1
        line = buf[start - buf_start : end - buf_start]
        if line.startswith(_COMMIT):
            try:
                obj = loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("commit"), dict):
                return obj, end + 1, read
        if start == 0:
            break
        buf = buf[: start - buf_start]
        end = start - 1
    raise Corrupt("no commit record: the file holds no complete save")


# --- older formats ---------------------------------------------------------------------

Legacy = tuple[dict[str, Any], list[dict[str, Any]]]


def _read_format_0(data: bytes, where: str) -> Legacy:
    """Format 0 (pre-release): the full session header, then one bare entry per line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    header = _loads(lines[0], f"{where} line 1")
    entries = []
    for n, line in enumerate(lines[1:], start=2):
        obj = _loads(line, f"{where} line {n}")
        if not isinstance(obj, dict):
            raise Corrupt(f"{where} line {n}: not an entry object")
        entries.append(obj)
    return header, entries


def _upgrade_0_to_1(header: dict[str, Any], entries: list[dict[str, Any]]) -> Legacy:
    """Format 1 keeps the same header and entry fields; only the file layout changed."""
    header = dict(header)
    header.setdefault("version", 1)
    return header, entries


#: Readers of each older format: the file's bytes -> (full header, entry dicts).
_LEGACY_READERS: dict[int, Callable[[bytes, str], Legacy]] = {0: _read_format_0}
#: UPGRADES[n] turns format-n data into format n+1 data.
UPGRADES: dict[int, Callable[[dict[str, Any], list[dict[str, Any]]], Legacy]] = {0: _upgrade_0_to_1}


def read_legacy(fmt: int, data: bytes, where: str) -> Legacy:
    """Read a file of an older format and upgrade its data to the current format."""
    reader = _LEGACY_READERS.get(fmt)
    if reader is None:
        raise Corrupt(f"format {fmt} is not supported by this release")
    header, entries = reader(data, where)
    for version in range(fmt, FORMAT_VERSION):
        header, entries = UPGRADES[version](header, entries)
    return header, entries
