"""One after-fork hook for every backend object that owns threads or connections."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["reset_after_fork"]

_T = TypeVar("_T")

#: Each live owner's reset; an owner leaves the table when it is collected.
_RESETS: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def reset_after_fork(owner: _T, reset: Callable[[_T], None]) -> None:
    """Call ``reset(owner)`` in every child process forked while ``owner`` lives.

    A forked child has only the thread that forked: an executor or a connection whose
    worker thread stayed in the parent would take work and never do it. ``reset`` drops
    such state (keeping what must not be closed in the child, such as a SQLite
    connection, referenced and unused) so that the child opens its own on next use.
    ``owner`` (hashable, weak-referenceable) is held weakly; a later call for the same
    owner replaces its reset.
    """
    _RESETS[owner] = reset


def _reset_all() -> None:
    for owner, reset in list(_RESETS.items()):
        reset(owner)


os.register_at_fork(after_in_child=_reset_all)
