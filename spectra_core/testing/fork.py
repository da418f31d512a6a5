"""Run a coroutine in a real forked child process, as a pre-forking server would."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings
from collections.abc import Awaitable, Callable

__all__ = ["run_in_forked_child"]


def run_in_forked_child(work: Callable[[], Awaitable[None]], timeout: float = 20.0) -> None:
    """Fork; in the child run ``work()`` on a fresh event loop, then exit. Raise
    AssertionError if the child fails or hangs (killed after ``timeout`` seconds more).

    Call it with no event loop running in the calling thread (from a plain test function,
    or through ``asyncio.to_thread``): the child runs ``asyncio.run``. Whatever the parent
    made before the fork (stores, managers) is there in the child, which is the point: a
    backend must cope with being inherited.
    """
    with warnings.catch_warnings():
        # Python 3.12+ warns when a process with threads forks: forking one is the point
        # (a backend must cope with the threads it left behind).
        warnings.filterwarnings(
            "ignore", message=r"This process .* is multi-threaded", category=DeprecationWarning
        )
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            asyncio.run(asyncio.wait_for(work(), timeout=timeout))
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 2 * timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked child hung for {2 * timeout:g} s")
        time.sleep(0.1)  # waiting for a real child process, not for the clock
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise AssertionError(f"the forked child failed (exit status {code})")
