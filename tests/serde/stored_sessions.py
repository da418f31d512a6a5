"""The sessions kept in ``tests/fixtures/format1/``, built literally from the models.

The fixtures were written by the release whose format they carry (format 1, main at
2424ba3, with its compiled entry builders) and are never rewritten: later releases must
load them as they are. :func:`sessions` builds, from the models alone, what each one
must load as; :func:`write` is how the files were made (kept to show what they hold):

    uv run python tests/serde/stored_sessions.py tests/fixtures/format1

Every entry kind is here, every content block, free-form values of every JSON type
(floats, integers beyond 64 bits, nested lists and objects, unicode, control
characters), an unknown kind written by a "newer" release, a label cleared with None,
a second root, a branch made by moving the leaf back, and a fork.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from spectra_core import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    CustomEntry,
    CustomMessageEntry,
    Entry,
    ImageContent,
    LabelEntry,
    MessageEntry,
    ModelChangeEntry,
    ModelRef,
    OpaqueEntry,
    Session,
    SessionConfig,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from spectra_core.models import ForkOrigin

__all__ = ["BATCHES", "sessions", "write"]

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
    "rkJggg=="
)


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _main_entries() -> list[list[Entry]]:
    """The entries of ``fixture-main``, in the batches they were saved in."""
    first: list[Entry] = [
        MessageEntry(
            id="e01",
            parent_id=None,
            timestamp=_at(1),
            message=UserMessage(
                (TextContent('héllo 👋 \u2028 \x00 "end" \\'), ImageContent(PNG, "image/png"))
            ),
        ),
        MessageEntry(
            id="e02",
            parent_id="e01",
            timestamp=_at(2),
            message=AssistantMessage(
                (
                    ThinkingContent("let me think", signature="sig-1"),
                    ThinkingContent("unsigned thought"),
                    TextContent("calling a tool"),
                    ToolCall(
                        "call-1",
                        "search",
                        {"q": "rust", "n": 3, "deep": {"x": [1, None, 1.5, True]}},
                    ),
                    ToolCall("call-2", "now"),
                ),
                model="m-1",
                provider="scripted",
                usage=Usage(10, 20, 1, 2),
                stop_reason="tool_use",
            ),
        ),
        MessageEntry(
            id="e03",
            parent_id="e02",
            timestamp=_at(3),
            message=ToolResultMessage(
                "call-1", "search", (TextContent("found"), ImageContent(PNG, "image/png"))
            ),
        ),
        MessageEntry(
            id="e04",
            parent_id="e03",
            timestamp=_at(4),
            message=ToolResultMessage("call-2", "now", "clock broke", is_error=True),
        ),
        MessageEntry(
            id="e05",
            parent_id="e04",
            timestamp=_at(5),
            message=AssistantMessage(
                (), model="m-1", stop_reason="error", error_message="upstream 503"
            ),
        ),
    ]
    second: list[Entry] = [
        ModelChangeEntry(
            id="e06",
            parent_id="e05",
            timestamp=_at(6),
            model=ModelRef("m-2", provider="p", name="M 2", api="chat", options={"t": 0.5}),
        ),
        AuditEntry(
            id="e07",
            parent_id="e06",
            timestamp=_at(7),
            event_type="run_started",
            details={"engine": "e1", "n": 1.5, "big": 2**70, "tiny": 1e-300},
        ),
        CustomEntry(
            id="e08",
            parent_id="e07",
            timestamp=_at(8),
            custom_type="ui_state",
            data={"open": True, "list": [1, "a", None, -(2**63)], "é": {"": []}},
        ),
        CustomEntry(id="e09", parent_id="e08", timestamp=_at(9), custom_type="scalar", data=42),
        CustomEntry(id="e10", parent_id="e09", timestamp=_at(10), custom_type="nothing"),
        CustomMessageEntry(
            id="e11",
            parent_id="e10",
            timestamp=_at(11),
            custom_type="note",
            content=(TextContent("remember this"), ImageContent(PNG, "image/jpeg")),
            display=False,
            details={"k": 1, "f": 0.1},
        ),
        CustomMessageEntry(
            id="e12",
            parent_id="e11",
            timestamp=_at(12),
            custom_type="plain",
            content=(TextContent("shown"),),
        ),
        CompactionEntry(
            id="e13",
            parent_id="e12",
            timestamp=_at(13),
            summary="summary so far",
            first_kept_entry_id="e03",
            tokens_before=1234,
        ),
        LabelEntry(id="e14", parent_id="e13", timestamp=_at(14), target_id="e01", label="start"),
        LabelEntry(id="e15", parent_id="e14", timestamp=_at(15), target_id="e01", label=None),
        OpaqueEntry(
            id="e16",
            parent_id="e15",
            timestamp=_at(16),
            kind="from_the_future",
            data={"payload": {"nested": [1, 2, 3]}, "flag": True, "ratio": 0.25},
        ),
    ]
    third: list[Entry] = [
        MessageEntry(  # a second root
            id="e17", parent_id=None, timestamp=_at(17), message=UserMessage("second root")
        ),
        MessageEntry(  # a sibling branch of e06, at the leaf moved back to e05
            id="e18",
            parent_id="e05",
            timestamp=_at(18).astimezone(IST),
            message=UserMessage("branch two"),
        ),
        MessageEntry(
            id="e19",
            parent_id="e18",
            timestamp=_at(19),
            message=AssistantMessage(
                "answer two",
                model="m-1",
                provider="scripted",
                usage=Usage(2**40, 0, 0, 7),
                stop_reason="stop",
            ),
        ),
    ]
    return [first, second, third]


def _fork_entries(main: list[Entry]) -> list[list[Entry]]:
    kept = [e for e in main if e.id in ("e01", "e02", "e03")]
    audit = AuditEntry(
        id="f01",
        parent_id="e03",
        timestamp=_at(100),
        event_type="fork",
        details={"source_session_id": "fixture-main", "source_entry_id": "e03"},
    )
    after = MessageEntry(
        id="f02", parent_id="f01", timestamp=_at(101), message=UserMessage("in the fork")
    )
    return [[*kept, audit], [after]]


#: For each session: the batches of entries saved after its creation, one save each.
BATCHES: dict[str, int] = {"fixture-main": 3, "fixture-fork": 2, "fixture-empty": 0}


def _headers() -> dict[str, Session]:
    config = SessionConfig(
        model=ModelRef(
            "gpt-x",
            provider="openai",
            name="GPT X",
            api="chat",
            options={"temperature": 0.2, "max_tokens": 1024, "stop": ["\n", "é"]},
        ),
        system_prompt='You are terse. ü ✓ "quoted" \\ \x01',
        metadata={"tags": ["a", "b"], "n": 1, "big": 2**70, "ratio": 1e16, "x": {"y": None}},
    )
    return {
        "fixture-main": Session(
            id="fixture-main",
            created_at=T0,
            updated_at=T0,
            user_id="user-1",
            tenant_id="tenant-1",
            config=config,
        ),
        "fixture-fork": Session(
            id="fixture-fork",
            created_at=_at(100),
            updated_at=_at(100),
            user_id="user-1",
            tenant_id="tenant-1",
            config=config,
            forked_from=ForkOrigin("fixture-main", "e03"),
        ),
        "fixture-empty": Session(id="fixture-empty", created_at=_at(200), updated_at=_at(200)),
    }


def _batches() -> dict[str, list[list[Entry]]]:
    main = _main_entries()
    return {
        "fixture-main": main,
        "fixture-fork": _fork_entries([e for batch in main for e in batch]),
        "fixture-empty": [],
    }


def _grow(session: Session, batch: list[Entry]) -> None:
    for entry in batch:
        session.add_entry(entry)
    session.updated_at = max(e.timestamp for e in batch)


def sessions() -> dict[str, Session]:
    """What each stored session must load as: every entry saved, at its last version."""
    out = _headers()
    for sid, batches in _batches().items():
        for batch in batches:
            _grow(out[sid], batch)
        out[sid].leaf_id = out[sid].entries[-1].id if out[sid].entries else None
        out[sid].mark_saved(len(batches) + 1)
    return out


async def _write_to(store: object) -> None:
    from spectra_core import SessionStore

    assert isinstance(store, SessionStore)
    headers = _headers()
    async with store:
        for sid, batches in _batches().items():
            session = headers[sid]
            await store.save(session)
            for batch in batches:
                _grow(session, batch)
                await store.save(session)
            loaded = await store.load(sid)
            assert loaded == sessions()[sid], sid


def write(directory: Path) -> None:
    """Write the sessions into ``directory/fs`` and ``directory/sqlite/sessions.db``."""
    from spectra_fs import FileSystemSessionStore
    from spectra_sqlite import SQLiteSessionStore

    (directory / "sqlite").mkdir(parents=True)
    asyncio.run(_write_to(FileSystemSessionStore(directory / "fs")))
    asyncio.run(_write_to(SQLiteSessionStore(directory / "sqlite" / "sessions.db")))


if __name__ == "__main__":
    write(Path(sys.argv[1]))
