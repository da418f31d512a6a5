"""Session and entry ids: generated URL-safe and validated before they reach a path or query."""

from __future__ import annotations

import os
import re
import unicodedata
import uuid

from .errors import InvalidIdError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_USER_ID_LENGTH",
    "new_entry_id",
    "new_session_id",
    "validate_id",
    "validate_user_id",
]

MAX_ID_LENGTH = 128
#: The longest user or tenant id accepted (characters).
MAX_USER_ID_LENGTH = 256
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def validate_id(value: object, what: str = "session id") -> str:
    """Return ``value`` if it is a safe id, else raise :class:`InvalidIdError` saying why.

    A safe id is 1-128 characters of ``A-Z a-z 0-9 _ . -``, starts with a letter or
    digit and is not made only of dots, so it is safe in a file name, a URL or a key.
    """
    if not isinstance(value, str):
        raise InvalidIdError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidIdError(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(
            f"{what} is {len(value)} characters long; the maximum is {MAX_ID_LENGTH}"
        )
    if _ID_RE.fullmatch(value) is None:
        raise InvalidIdError(
            f"{what} {value!r} is not allowed: use only letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return value


def validate_user_id(value: object, what: str = "user id") -> str:
    """Return ``value`` if it is an acceptable user (or tenant) id, else raise
    :class:`InvalidIdError` saying why.

    User ids come from an application's users (logins, e-mail addresses, ``auth0|123``),
    so any printable text is allowed: 1-256 characters, not only whitespace, without
    control characters (NUL, newlines, escapes) or lone surrogates (text that is not
    valid Unicode cannot be stored).
    """
    if not isinstance(value, str):
        raise InvalidIdError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidIdError(f"{what} must not be empty")
    if len(value) > MAX_USER_ID_LENGTH:
        raise InvalidIdError(
            f"{what} is {len(value)} characters long; the maximum is {MAX_USER_ID_LENGTH}"
        )
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidIdError(
                f"{what} contains the control character {char!r} at position {i}; "
                "use printable text"
            )
        if category == "Cs":
            raise InvalidIdError(
                f"{what} contains {char!r} at position {i}, which is not valid Unicode "
                "(was it decoded from bytes that are not UTF-8?)"
            )
    return value


def new_session_id() -> str:
    """A new random session id (32 hex digits)."""
    return uuid.uuid4().hex


def new_entry_id() -> str:
    """A new random entry id (12 hex digits); the manager re-draws on a collision."""
    return os.urandom(6).hex()  # what secrets.token_hex(6) does, two calls fewer
