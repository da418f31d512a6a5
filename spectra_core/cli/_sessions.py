"""``spectra sessions list|show|tree|export|rm``: inspect the configured store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import build_store
from ..errors import SpectraError
from ..ids import validate_user_id
from ..manager import SessionManager
from ..models import (
    AuditEntry,
    CompactionEntry,
    CustomEntry,
    CustomMessageEntry,
    Entry,
    LabelEntry,
    MessageEntry,
    ModelChangeEntry,
    OpaqueEntry,
    Session,
    TextContent,
    ThinkingContent,
    ToolCall,
)
from ..serde import dumps, entry_to_json, header_to_dict
from ..store import SessionFilter
from ..tree import TreeNode
from ._common import add_config_option, fail, load


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list, show, export or delete stored sessions")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = actions.add_parser("list", help="list sessions, newest first")
    add_config_option(ls)
    ls.add_argument("--user", help="only this user's sessions")
    ls.add_argument("--tenant", help="only this tenant's sessions")
    ls.add_argument("--since", type=datetime.fromisoformat, help="updated at or after (ISO)")
    ls.add_argument("--until", type=datetime.fromisoformat, help="updated before (ISO)")
    ls.add_argument("--limit", type=int, default=50, help="page size (default 50)")
    ls.add_argument("--cursor", help="cursor printed at the end of the previous page")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=_handler(_list))

    for name, fn, text in (
        ("show", _show, "print the active branch of a session"),
        ("tree", _tree, "print the whole entry tree of a session"),
        ("export", _export, "write a session as JSON lines (header, then entries)"),
        ("rm", _rm, "delete a session"),
    ):
        q = actions.add_parser(name, help=text)
        add_config_option(q)
        q.add_argument("session_id", metavar="SESSION_ID")
        if name == "export":
            q.add_argument("--output", "-o", help="file to write (default: stdout)")
        q.set_defaults(handler=_handler(fn))


def _handler(
    fn: Callable[[SessionManager, argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            for what in ("user", "tenant"):
                if getattr(args, what, None) is not None:
                    validate_user_id(getattr(args, what), f"{what} id")
            config, registry = load(args.config)
        except SpectraError as exc:
            return fail(exc, 2)

        async def go() -> int:
            store = build_store(config, registry)
            async with store:
                return await fn(SessionManager(store), args)

        try:
            return asyncio.run(go())
        except SpectraError as exc:
            return fail(exc)

    return run


async def _list(manager: SessionManager, args: argparse.Namespace) -> int:
    page = await manager.list(
        SessionFilter(
            user_id=args.user,
            tenant_id=args.tenant,
            updated_after=args.since,
            updated_before=args.until,
            limit=args.limit,
            cursor=args.cursor,
        )
    )
    for info in page:
        if args.json:
            print(
                json.dumps(
                    {
                        "id": info.id,
                        "user_id": info.user_id,
                        "tenant_id": info.tenant_id,
                        "created_at": info.created_at.isoformat(),
                        "updated_at": info.updated_at.isoformat(),
                        "version": info.version,
                    }
                )
            )
        else:
            who = "/".join(x for x in (info.tenant_id, info.user_id) if x) or "-"
            print(f"{info.id}  {info.updated_at:%Y-%m-%d %H:%M:%S}  v{info.version}  {who}")
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def describe(entry: Entry, width: int = 100) -> str:
    """One line describing an entry, for show and tree."""
    if isinstance(entry, MessageEntry):
        m = entry.message
        parts = []
        for b in m.content:
            if isinstance(b, TextContent):
                parts.append(b.text)
            elif isinstance(b, ThinkingContent):
                parts.append(f"[thinking] {b.thinking}")
            elif isinstance(b, ToolCall):
                parts.append(f"[tool call {b.name} {json.dumps(b.arguments)}]")
            else:
                parts.append(f"[image {b.mime_type}]")
        text = f"{m.role}: " + " ".join(parts)
    elif isinstance(entry, ModelChangeEntry):
        text = f"model -> {entry.model.id}"
    elif isinstance(entry, AuditEntry):
        text = f"audit {entry.event_type} {json.dumps(entry.details)}"
    elif isinstance(entry, CustomEntry):
        text = f"custom {entry.custom_type}"
    elif isinstance(entry, CustomMessageEntry):
        text = f"custom message {entry.custom_type}: " + " ".join(
            b.text for b in entry.content if isinstance(b, TextContent)
        )
    elif isinstance(entry, CompactionEntry):
        text = f"compaction (from {entry.first_kept_entry_id}): {entry.summary}"
    elif isinstance(entry, LabelEntry):
        text = f"label {entry.target_id} = {entry.label!r}"
    else:
        assert isinstance(entry, OpaqueEntry)
        text = f"unknown kind {entry.kind!r}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def _show(manager: SessionManager, args: argparse.Namespace) -> int:
    session = await manager.load(args.session_id)
    print(f"session {session.id}  v{session.version}  user={session.user_id}")
    for entry in manager.get_branch(session):
        print(f"{entry.id}  {describe(entry)}")
    return 0


async def _tree(manager: SessionManager, args: argparse.Namespace) -> int:
    session = await manager.load(args.session_id)
    print(f"session {session.id}  ({len(session.entries)} entries, * = leaf)")
    for line in draw_tree(manager, session):
        print(line)
    return 0


def draw_tree(manager: SessionManager, session: Session) -> list[str]:
    """The tree as text lines, drawn iteratively (sessions can be deeper than Python's
    recursion limit). A run of only children stays in one column; forks indent."""
    lines: list[str] = []
    roots = manager.get_tree(session)
    stack: list[tuple[TreeNode, str, bool]] = [
        (r, "", i == len(roots) - 1) for i, r in reversed(list(enumerate(roots)))
    ]
    while stack:
        node, prefix, last = stack.pop()
        mark = "* " if node.entry.id == session.leaf_id else ""
        label = f" [{node.label}]" if node.label else ""
        branch = "└─ " if last else "├─ "
        lines.append(f"{prefix}{branch}{mark}{node.entry.id}{label}  {describe(node.entry, 80)}")
        kids = node.children
        if len(kids) == 1:
            stack.append((kids[0], prefix, True))
            continue
        child_prefix = prefix + ("   " if last else "│  ")
        for i in range(len(kids) - 1, -1, -1):
            stack.append((kids[i], child_prefix, i == len(kids) - 1))
    return lines


async def _export(manager: SessionManager, args: argparse.Namespace) -> int:
    session = await manager.load(args.session_id)
    lines = [dumps({"type": "session", **header_to_dict(session)})]
    lines += [entry_to_json(e) for e in session.entries]
    text = "\n".join(lines) + "\n"
    if args.output:
        await asyncio.to_thread(_write_file, Path(args.output), text)
        print(f"wrote {len(session.entries)} entries to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path``; a one-line SpectraError if it cannot be written (and
    no partial file left behind that was not there before)."""
    existed = path.exists()
    try:
        with path.open("w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        if not existed and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):
            reason += f" (the folder {str(path.parent)!r} does not exist)"
        raise SpectraError(f"cannot write {str(path)!r}: {reason}") from None


async def _rm(manager: SessionManager, args: argparse.Namespace) -> int:
    await manager.delete(args.session_id)
    print(f"deleted session {args.session_id}")
    return 0
