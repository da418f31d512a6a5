"""A writer process for the crash and multi-process tests (run with ``python _writer.py``).

Modes:
  crash DIR SEED          save to sessions crash-a / crash-b forever, printing
                          "<session> <entry id> <version>" after each acknowledged save
  die-after-save DIR SID    save one entry, then die at once (its pending marker is
                          left in the listing index)
  die-before-write DIR SID  die after the listing index took the new row, before the
                          session file is written
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

import structlog

from spectra_core import SessionManager, SessionNotFoundError
from spectra_fs import FileSystemSessionStore


async def crash(directory: str, seed: int) -> None:
    rng = random.Random(seed)
    async with FileSystemSessionStore(directory) as store:
        manager = SessionManager(store)
        sessions = {}
        for sid in ("crash-a", "crash-b"):
            try:
                sessions[sid] = await manager.load(sid, tail=1)
            except SessionNotFoundError:
                sessions[sid] = await manager.create(session_id=sid)
                print(f"{sid} - {sessions[sid].version}", flush=True)
        n = 0
        while True:
            sid = rng.choice(("crash-a", "crash-b"))
            s = sessions[sid]
            entries = [
                manager.append_message(s, f"{seed}-{n}-{i}" + "x" * rng.randrange(1, 16_000))
                for i in range(rng.randrange(1, 4))
            ]
            await manager.save(s)
            for e in entries:
                print(f"{sid} {e.id} {s.version}", flush=True)
            n += 1


async def die_after_save(directory: str, sid: str) -> None:
    store = FileSystemSessionStore(directory)
    manager = SessionManager(store)
    s = await manager.load(sid)
    manager.append_message(s, "saved, but the index never heard it finished")
    await manager.save(s)
    os._exit(9)


async def die_before_write(directory: str, sid: str) -> None:
    from spectra_fs import _files

    def die(*_: object) -> None:
        os._exit(9)

    _files.write_all = die  # type: ignore[assignment]
    store = FileSystemSessionStore(directory)
    manager = SessionManager(store)
    s = await manager.load(sid)
    manager.append_message(s, "never written")
    await manager.save(s)


def main() -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    mode, *args = sys.argv[1:]
    if mode == "crash":
        asyncio.run(crash(args[0], int(args[1])))
    elif mode == "die-after-save":
        asyncio.run(die_after_save(args[0], args[1]))
    elif mode == "die-before-write":
        asyncio.run(die_before_write(args[0], args[1]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
