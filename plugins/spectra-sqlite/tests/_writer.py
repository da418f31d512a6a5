"""A writer process for the multi-process and crash tests (run as a script).

``crash DB SESSION``: appends and saves forever, printing ``VERSION ENTRY_ID`` after
each acknowledged save (the parent kills it with SIGKILL).
"""

from __future__ import annotations

import asyncio
import sys

from spectra_core import SessionManager, SessionNotFoundError
from spectra_sqlite import SQLiteSessionStore


async def crash(db: str, session_id: str) -> None:
    async with SQLiteSessionStore(db) as store:
        manager = SessionManager(store)
        try:
            s = await manager.load(session_id, tail=5)
        except SessionNotFoundError:
            s = await manager.create(session_id=session_id)
        i = 0
        while True:
            i += 1
            text = f"m{i}" + ("x" * 50_000 if i % 5 == 0 else "")
            entry = manager.append_message(s, text)
            await manager.save(s)
            sys.stdout.write(f"{s.version} {entry.id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    asyncio.run(crash(args[0], args[1]))
