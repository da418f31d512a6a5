"""Text that can be stored: every string a store writes must encode as UTF-8.

Python strings may hold lone surrogates (U+D800-U+DFFF, e.g. from ``surrogateescape``
decoding of bytes that are not UTF-8); no store can write them. Boundaries either refuse
such text (:func:`check_text`, for what a caller gives) or replace each surrogate with
U+FFFD (:func:`scrub_text`, for output that must not be lost, like an error message).
"""

from __future__ import annotations

import re

from .errors import InvalidArgumentError

__all__ = ["check_text", "scrub_text", "unencodable_at"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def unencodable_at(text: str) -> int | None:
    """The index of the first character UTF-8 cannot encode, or None if there is none."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a string UTF-8 can encode; else raise
    :class:`InvalidArgumentError` naming ``what`` and where the bad character is."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string, got {type(value).__name__}")
    index = unencodable_at(value)
    if index is not None:
        raise InvalidArgumentError(
            f"{what} holds a lone surrogate (U+{ord(value[index]):04X}) at index {index}, "
            "which cannot be encoded as UTF-8; decode input bytes as UTF-8 first"
        )
    return value


def scrub_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    if unencodable_at(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)
