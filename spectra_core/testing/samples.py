"""Sample data covering every entry kind and content block."""

from __future__ import annotations

from typing import Any

from ..manager import SessionManager
from ..models import (
    AssistantMessage,
    Entry,
    ImageContent,
    ModelRef,
    Session,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from ..serde import entry_from_dict

__all__ = ["every_entry_kind"]


def every_entry_kind(manager: SessionManager, session: Session) -> list[Entry]:
    """Append one entry of every kind (and every content block) to ``session``."""
    first = manager.append_message(
        session,
        UserMessage([TextContent("héllo 👋 \u2028 \x00 end"), ImageContent("aGk=", "image/png")]),
    )
    out: list[Entry] = [first]
    out.append(
        manager.append_message(
            session,
            AssistantMessage(
                [
                    ThinkingContent("let me think", signature="sig"),
                    TextContent("calling a tool"),
                    ToolCall("call-1", "search", {"q": "rust", "n": 3, "deep": {"x": [1, None]}}),
                ],
                model="m-1",
                provider="scripted",
                usage=Usage(10, 20, 1, 2),
                stop_reason="tool_use",
            ),
        )
    )
    out.append(
        manager.append_message(
            session, ToolResultMessage("call-1", "search", "result", is_error=True)
        )
    )
    out.append(manager.append_model_change(session, ModelRef("m-2", provider="p", name="M 2")))
    out.append(manager.append_audit(session, "run_started", {"engine": "e1", "n": 1.5}))
    out.append(manager.append_custom(session, "ui_state", {"open": True, "list": [1, "a"]}))
    out.append(manager.append_custom_message(session, "note", "remember this", details={"k": 1}))
    out.append(manager.append_compaction(session, "summary so far", first.id, tokens_before=1234))
    out.append(manager.append_label(session, first.id, "start"))
    raw: dict[str, Any] = {
        "type": "from_the_future",
        "id": "future-1",
        "parent_id": session.leaf_id,
        "timestamp": out[-1].timestamp.isoformat(),
        "payload": {"nested": [1, 2, 3]},
    }
    future = entry_from_dict(raw)
    session.add_entry(future)
    out.append(future)
    return out
