"""Everything a backend author imports: one module, documented in docs/writing-a-plugin.md.

A session store subclasses :class:`StoreBase`, keeps the save contract with
:func:`prepare_save` (:class:`PendingSave` states it), builds loaded sessions with
:func:`session_from_stored`, stores entries with the entry codec (:func:`entry_to_json`,
:func:`entry_from_json`, ...), answers ``list`` with :func:`keyset_sql` (SQL, any
placeholder style) or :func:`page_of` (in memory), and proves it all by running
:class:`spectra_core.testing.SessionStoreConformance` (kept in ``spectra_core.testing``
because it needs pytest). A plugin registers its factory through :data:`hookimpl`.

The top-level ``spectra_core`` namespace is for applications.
"""

from __future__ import annotations

from ._after_fork import reset_after_fork
from ._stored import PendingSave, new_incarnation, prepare_save, session_from_stored
from .breaker import BreakerListener, BreakerMetrics, CircuitBreaker, CircuitBreakerOptions
from .breaker._base import BreakerBase, admission_wait, timed_transition
from .clock import Clock, SystemClock
from .durations import Duration, parse_duration
from .errors import (
    ConflictError,
    EntryNotFoundError,
    InvalidArgumentError,
    InvalidIdError,
    SessionNotFoundError,
    SpectraError,
    StoreError,
)
from .hookspecs import Register, hookimpl
from .ids import validate_id
from .models import (
    CompactionEntry,
    Entry,
    ModelChangeEntry,
    OpaqueEntry,
    PartialLoad,
    Session,
    entry_kind,
)
from .rate_limit import RateLimiter, RateLimitRequest, RateLimitResult, Reservation
from .serde import (
    FORMAT_VERSION,
    bulk_decoding,
    dumps,
    entries_from_json_lines,
    entry_from_dict,
    entry_from_json,
    entry_to_dict,
    entry_to_json,
    loads,
)
from .store import (
    BranchLoadingStore,
    Placeholder,
    SessionFilter,
    SessionInfo,
    SessionPage,
    SessionStore,
    StoreBase,
    cut_page,
    decode_cursor,
    encode_cursor,
    epoch_micros,
    keyset_sql,
    page_of,
)
from .tree import active_branch_window, trim_to_active_branch

__all__ = [
    "FORMAT_VERSION",
    "BranchLoadingStore",
    "BreakerBase",
    "BreakerListener",
    "BreakerMetrics",
    "CircuitBreaker",
    "CircuitBreakerOptions",
    "Clock",
    "CompactionEntry",
    "ConflictError",
    "Duration",
    "Entry",
    "EntryNotFoundError",
    "InvalidArgumentError",
    "InvalidIdError",
    "ModelChangeEntry",
    "OpaqueEntry",
    "PartialLoad",
    "PendingSave",
    "Placeholder",
    "RateLimitRequest",
    "RateLimitResult",
    "RateLimiter",
    "Register",
    "Reservation",
    "Session",
    "SessionFilter",
    "SessionInfo",
    "SessionNotFoundError",
    "SessionPage",
    "SessionStore",
    "SpectraError",
    "StoreBase",
    "StoreError",
    "SystemClock",
    "active_branch_window",
    "admission_wait",
    "bulk_decoding",
    "cut_page",
    "decode_cursor",
    "dumps",
    "encode_cursor",
    "entries_from_json_lines",
    "entry_from_dict",
    "entry_from_json",
    "entry_kind",
    "entry_to_dict",
    "entry_to_json",
    "epoch_micros",
    "hookimpl",
    "keyset_sql",
    "loads",
    "new_incarnation",
    "page_of",
    "parse_duration",
    "prepare_save",
    "reset_after_fork",
    "session_from_stored",
    "timed_transition",
    "trim_to_active_branch",
    "validate_id",
]
