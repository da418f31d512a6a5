"""Session and entry ids: generated URL-safe and validated before they reach a path or query."""

from __future__ import annotations

import os
import re
import uuid

from .errors import InvalidIdError

__all__ = ["MAX_ID_LENGTH", "new_entry_id", "new_session_id", "validate_id"]

MAX_ID_LENGTH = 128
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


def new_session_id() -> str:
    """A new random session id (32 hex digits)."""
    return uuid.uuid4().hex


def new_entry_id() -> str:
    """A new random entry id (12 hex digits); the manager re-draws on a collision."""
    return os.urandom(6).hex()  # what secrets.token_hex(6) does, two calls fewer
