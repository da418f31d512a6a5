"""The threads a store's writes run on: each session id always on the same one."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from spectra_core.backend import reset_after_fork

__all__ = ["SessionThreads"]

_T = TypeVar("_T")


class SessionThreads:
    """``count`` single-thread executors, started on first use; a session's work always
    runs on the one its id hashes to.

    With the loop's shared pool (``asyncio.to_thread``) consecutive saves of a session
    land on whichever idle thread the kernel wakes, which competes for the GIL with the
    thread that just finished the previous save (measured in docs/design/fs-store.md).
    Saves of one session are serialized by the store anyway; other
    sessions still run in parallel on the other threads. Loads stay on the shared pool:
    a long one would hold up the saves of every session on its thread.
    """

    def __init__(self, count: int = 4, name: str = "spectra-fs") -> None:
        self._pools: list[ThreadPoolExecutor | None] = [None] * count
        self._name = name
        self._guard = threading.Lock()
        reset_after_fork(self, _forget_threads)

    def _pool(self, key: str) -> ThreadPoolExecutor:
        i = hash(key) % len(self._pools)
        pool = self._pools[i]
        if pool is None:
            with self._guard:
                pool = self._pools[i]
                if pool is None:
                    pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self._name}-{i}")
                    self._pools[i] = pool
        return pool

    async def run(self, key: str, fn: Callable[..., _T], /, *args: Any) -> _T:
        """``fn(*args)`` on ``key``'s thread, in a copy of the caller's context (as
        ``asyncio.to_thread`` does, so log context variables reach the thread)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool(key), call)

    def shutdown(self) -> None:
        """Let the threads end once their queued work is done (new work starts new ones)."""
        with self._guard:
            pools, self._pools = self._pools, [None] * len(self._pools)
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False)


def _forget_threads(threads: SessionThreads) -> None:
    """In a forked child the parent's threads do not exist: an executor would queue work
    for them forever. Start afresh, as if no work had run yet."""
    threads._pools = [None] * len(threads._pools)
    threads._guard = threading.Lock()
