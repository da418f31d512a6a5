"""A writer process for the multi-process and crash tests (run as a script).

``race DB SESSION TAG N``: N saves of one message each, retrying on ConflictError;
prints the number of conflicts at the end.
``crash DB SESSION``: appends and saves forever, printing ``VERSION ENTRY_ID`` after
each acknowledged save (the parent kills it with SIGKILL).
``unclosed DB SESSION``: saves once and exits without closing the store.
"""

from __future__ import annotations

import asyncio
import sys

from spectra_core import ConflictError, SessionManager, SessionNotFound
from spectra_sqlite import SQLiteSessionStore


async def race(db: str, session_id: str, tag: str, n: int) -> None:
    async with SQLiteSessionStore(db, busy_timeout=30) as store:
        manager = SessionManager(store)
        conflicts = 0
        for i in range(n):
            while True:
                s = await manager.load(session_id, tail=1)
                manager.append_message(s, f"{tag}-{i}")
                try:
                    await manager.save(s)
                    break
                except ConflictError:
                    conflicts += 1
        print(conflicts, flush=True)


async def crash(db: str, session_id: str) -> None:
    async with SQLiteSessionStore(db) as store:
        manager = SessionManager(store)
        try:
            s = await manager.load(session_id, tail=5)
        except SessionNotFound:
            s = await manager.create(session_id=session_id)
        i = 0
        while True:
            i += 1
            text = f"m{i}" + ("x" * 50_000 if i % 5 == 0 else "")
            entry = manager.append_message(s, text)
            await manager.save(s)
            sys.stdout.write(f"{s.version} {entry.id}\n")
            sys.stdout.flush()


async def unclosed(db: str, session_id: str) -> None:
    store = SQLiteSessionStore(db)  # deliberately never closed
    manager = SessionManager(store)
    s = await manager.create(session_id=session_id)
    manager.append_message(s, "saved before exit")
    await manager.save(s)
    print(s.version, flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "race":
        asyncio.run(race(args[0], args[1], args[2], int(args[3])))
    elif mode == "unclosed":
        asyncio.run(unclosed(args[0], args[1]))
    else:
        asyncio.run(crash(args[0], args[1]))
