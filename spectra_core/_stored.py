"""The store side of a session: building one from stored data, and the save contract."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .errors import ConflictError
from .ids import validate_id
from .models import Entry, PartialLoad, Session
from .serde import header_from_dict, header_to_dict

__all__ = ["PendingSave", "new_incarnation", "prepare_save", "session_from_stored"]


def new_incarnation() -> str:
    """A fresh random incarnation token (URL-safe, 16 characters)."""
    return secrets.token_urlsafe(12)


def session_from_stored(
    header: Mapping[str, Any],
    entries: Sequence[Entry] = (),
    *,
    partial: PartialLoad | None = None,
) -> Session:
    """The session a store loads: ``header`` as :meth:`PendingSave.header` gave it to the
    store (JSON values; unknown keys are ignored), ``entries`` in append order. Every
    entry counts as saved: only entries appended later are unsaved. Pass ``partial``
    when ``entries`` is only the active branch's window (see ``BranchLoadingStore``).

    Raises ValueError saying what does not convert (a store wraps it in StoreError).
    """
    try:
        fields = header_from_dict(header)
    except Exception as exc:  # cattrs raises several kinds; one is enough for a store
        raise ValueError(f"the session header does not convert: {exc}") from exc
    fields["partial"] = partial
    return Session(**fields, entries=list(entries), saved_count=len(entries))


@attrs.define
class PendingSave:
    """One save of ``session`` being made: what to write and what to check first.

    The contract every store keeps (``SessionStore.save``):

    1. Write only :attr:`new_entries` (``session.unsaved_entries``), appended after what
       is stored, and the header (:meth:`header`). A session loaded with ``tail=`` or
       ``active_branch=True`` (``session.partial`` is set) holds only a window of the
       stored entries: never count, rewrite or look up stored entries through
       ``session.entries``; a new entry's parent may be a stored entry outside it.
    2. Atomically with the write, read the stored version and incarnation and call
       :meth:`check`: it raises ConflictError (write nothing) unless the stored session is
       the one this copy was loaded from, at the same version (``creating``: none stored).
    3. Once the write is durable, call :meth:`done`.
    """

    session: Session
    #: The version the save writes: the copy's version plus one.
    version: int
    #: The incarnation the save writes: a new one when the session is created.
    incarnation: str | None
    new_entries: list[Entry]

    @property
    def creating(self) -> bool:
        """Whether this save creates the session (no session may be stored under its id)."""
        return self.session.version == 0

    @property
    def expected_version(self) -> int:
        """The stored version this save expects (0: none stored)."""
        return self.session.version

    def header(self) -> dict[str, Any]:
        """The header to store (JSON values): the session without its entries and the
        in-memory ``partial`` mark, at the new version and incarnation."""
        header = header_to_dict(self.session)
        header.pop("partial", None)
        header["version"] = self.version
        header["incarnation"] = self.incarnation
        return header

    def conflict(
        self, stored_version: int | None, stored_incarnation: str | None
    ) -> ConflictError | None:
        """The error this save must raise given what is stored (``stored_version=None``:
        nothing stored under the id), or ``None`` when it may write."""
        session = self.session
        if self.creating:
            if stored_version is None:
                return None
            return ConflictError(session.id, 0, stored_version)
        if stored_version is None:
            return ConflictError(session.id, session.version, None)
        if stored_incarnation != session.incarnation:
            return ConflictError(session.id, session.version, stored_version, recreated=True)
        if stored_version != session.version:
            return ConflictError(session.id, session.version, stored_version)
        return None

    def check(self, stored_version: int | None, stored_incarnation: str | None) -> None:
        """Raise :meth:`conflict`'s error, if there is one."""
        error = self.conflict(stored_version, stored_incarnation)
        if error is not None:
            raise error

    def done(self) -> None:
        """Record the committed save on the session: its new version and incarnation, and
        every entry now saved."""
        self.session.incarnation = self.incarnation
        self.session.mark_saved(self.version)


def prepare_save(session: Session) -> PendingSave:
    """Start a save of ``session`` (its id is validated first); see :class:`PendingSave`."""
    validate_id(session.id)
    incarnation = session.incarnation
    if incarnation is None and session.version == 0:
        incarnation = new_incarnation()
    return PendingSave(session, session.version + 1, incarnation, list(session.unsaved_entries))
