"""A process forked from one that used the store opens its own connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

from spectra_core import SessionManager
from spectra_core.testing import run_in_forked_child
from spectra_sqlite import SQLiteSessionStore


def test_a_forked_child_saves_with_the_store_of_its_parent(tmp_path: Path) -> None:
    # The parent's aiosqlite thread does not exist in the child: without the fork
    # handler the child's first statement would wait for it forever.
    store = SQLiteSessionStore(tmp_path / "sessions.db")
    manager = SessionManager(store)

    async def first() -> str:
        session = await manager.create()
        manager.append_message(session, "from the parent")
        await manager.save(session)
        return session.id

    session_id = asyncio.run(first())

    async def in_child() -> None:
        session = await manager.load(session_id)
        manager.append_message(session, "from the child")
        await manager.save(session)
        await store.aclose()

    run_in_forked_child(in_child)

    async def check() -> list[str]:
        loaded = await manager.load(session_id)
        await store.aclose()
        return [str(e.message.text) for e in loaded.entries]  # type: ignore[attr-defined]

    assert asyncio.run(check()) == ["from the parent", "from the child"]
