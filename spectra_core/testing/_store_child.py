"""The other process of the conformance suite's multi-process tests (run as
``python -m spectra_core.testing._store_child MODE RECIPE ...``; RECIPE is a
:class:`~spectra_core.testing.StoreRecipe` as JSON).

``contend RECIPE SESSION N TAG``: N saves of one message each to SESSION, reloading (the
last entry only) and retrying on ConflictError; prints the number of conflicts.
``unclosed RECIPE SESSION``: creates SESSION, saves one message, prints the version and
exits without closing the store (the interpreter must still exit).
"""

from __future__ import annotations

import asyncio
import sys

import structlog

from ..errors import ConflictError
from ..manager import SessionManager
from .recipe import StoreRecipe


async def contend(recipe: StoreRecipe, session_id: str, count: int, tag: str) -> None:
    conflicts = 0
    async with recipe.open() as store:
        manager = SessionManager(store)
        for i in range(count):
            while True:
                session = await manager.load(session_id, tail=1)
                manager.append_message(session, f"{tag}-{i}")
                try:
                    await manager.save(session)
                    break
                except ConflictError:
                    conflicts += 1
    print(conflicts, flush=True)


async def unclosed(recipe: StoreRecipe, session_id: str) -> None:
    manager = SessionManager(recipe.open())  # deliberately never closed
    session = await manager.create(session_id=session_id)
    manager.append_message(session, "saved before exit")
    await manager.save(session)
    print(session.version, flush=True)


def main(argv: list[str]) -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    mode, recipe_json, *args = argv
    recipe = StoreRecipe.from_json(recipe_json)
    if mode == "contend":
        asyncio.run(contend(recipe, args[0], int(args[1]), args[2]))
    elif mode == "unclosed":
        asyncio.run(unclosed(recipe, args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
