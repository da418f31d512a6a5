"""Reading the entry tree: branches, the whole tree, and the context sent to the model."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .errors import InvalidArgumentError
from .models import (
    CompactionEntry,
    CustomMessageEntry,
    Entry,
    LabelEntry,
    Message,
    MessageEntry,
    ModelChangeEntry,
    ModelRef,
    PartialLoad,
    Session,
    UserMessage,
)

__all__ = [
    "SessionContext",
    "TreeNode",
    "active_branch_window",
    "build_context",
    "get_branch",
    "get_tree",
    "labels",
    "trim_to_active_branch",
]

#: How a compaction summary is presented to the model.
SUMMARY_TEMPLATE = (
    "The conversation history before this point was compacted into the following summary:\n"
    "<summary>\n{summary}\n</summary>"
)


@attrs.define
class TreeNode:
    """One entry of :func:`get_tree` with its children, in append order."""

    entry: Entry
    children: list[TreeNode] = attrs.field(factory=list)
    label: str | None = None


@attrs.frozen
class SessionContext:
    """What to send to the model for one branch."""

    system_prompt: str | None
    model: ModelRef | None
    messages: tuple[Message, ...]


def get_branch(session: Session, entry_id: str | None = None) -> list[Entry]:
    """The path from the root to ``entry_id`` (default: the leaf), root first.

    A session loaded partially starts its path at the first loaded ancestor.
    """
    target = session.leaf_id if entry_id is None else entry_id
    if target is None:
        return []
    path: list[Entry] = []
    entry = session.get_entry(target)
    while True:
        path.append(entry)
        parent = entry.parent_id
        if parent is None or not session.has_entry(parent):
            break
        entry = session.get_entry(parent)
    path.reverse()
    return path


def labels(session: Session) -> dict[str, str]:
    """The current label of each labelled entry (the latest label entry wins)."""
    out: dict[str, str] = {}
    for e in session.entries:
        if isinstance(e, LabelEntry):
            if e.label is None:
                out.pop(e.target_id, None)
            else:
                out[e.target_id] = e.label
    return out


def get_tree(session: Session) -> list[TreeNode]:
    """The roots of the entry tree with their children, in append order."""
    names = labels(session)
    nodes = {e.id: TreeNode(e, label=names.get(e.id)) for e in session.entries}
    roots: list[TreeNode] = []
    for e in session.entries:
        parent = nodes.get(e.parent_id) if e.parent_id is not None else None
        (parent.children if parent is not None else roots).append(nodes[e.id])
    return roots


def _as_message(entry: Entry) -> Message | None:
    if isinstance(entry, MessageEntry):
        return entry.message
    if isinstance(entry, CustomMessageEntry):
        return UserMessage(entry.content)
    return None


def build_context(session: Session, entry_id: str | None = None) -> SessionContext:
    """The system prompt, model and messages for the branch ending at ``entry_id``.

    The latest model change on the path wins over the session's configured model. The
    latest compaction on the path replaces everything before its first kept entry with
    its summary. Custom, audit, label and unknown entries are not sent.
    """
    path = get_branch(session, entry_id)
    model = session.config.model
    if session.partial is not None and session.partial.model is not None:
        model = session.partial.model
    compaction_at = -1
    for i, e in enumerate(path):
        if isinstance(e, ModelChangeEntry):
            model = e.model
        elif isinstance(e, CompactionEntry):
            compaction_at = i

    messages: list[Message] = []
    if compaction_at >= 0:
        comp = path[compaction_at]
        assert isinstance(comp, CompactionEntry)
        messages.append(UserMessage(SUMMARY_TEMPLATE.format(summary=comp.summary)))
        kept_from = next(
            (i for i, e in enumerate(path[:compaction_at]) if e.id == comp.first_kept_entry_id),
            compaction_at,
        )
        visible = path[kept_from:compaction_at] + path[compaction_at + 1 :]
    else:
        visible = path
    for e in visible:
        m = _as_message(e)
        if m is not None:
            messages.append(m)
    return SessionContext(session.config.system_prompt, model, tuple(messages))


def active_branch_window(
    path: Sequence[Entry], tail: int | None = None
) -> tuple[int, ModelRef | None]:
    """Where a bounded load of ``path`` (root -> leaf) starts, and the model in force there.

    The window starts at the first kept entry of the last compaction on the path (or at
    the root), and holds at most the last ``tail`` entries when ``tail`` is given.
    """
    if tail is not None and tail < 1:
        raise InvalidArgumentError(f"tail must be at least 1, got {tail}")
    start = 0
    for i in range(len(path) - 1, -1, -1):
        e = path[i]
        if isinstance(e, CompactionEntry):
            start = next((j for j in range(i) if path[j].id == e.first_kept_entry_id), i)
            break
    if tail is not None:
        start = max(start, len(path) - tail)
    model = None
    for e in path[:start]:
        if isinstance(e, ModelChangeEntry):
            model = e.model
    return start, model


def trim_to_active_branch(session: Session, tail: int | None = None) -> Session:
    """A copy of ``session`` holding only the window of its active branch (see
    :func:`active_branch_window`), marked ``partial``. Stores that cannot load a window
    natively load the whole session and call this."""
    path = get_branch(session)
    start, model = active_branch_window(path, tail)
    kept = path[start:]
    return Session(
        id=session.id,
        created_at=session.created_at,
        updated_at=session.updated_at,
        user_id=session.user_id,
        tenant_id=session.tenant_id,
        config=session.config,
        forked_from=session.forked_from,
        leaf_id=session.leaf_id,
        version=session.version,
        incarnation=session.incarnation,
        entries=list(kept),
        partial=(
            PartialLoad(kept[0].id if kept else None, model)
            if len(kept) != len(session.entries)
            else None
        ),
        saved_count=len(kept),
    )
