"""``spectra run`` and ``spectra chat``: talk to an agent from the terminal.

With no config file both work offline: the built-in ``echo`` provider and a local store
(SQLite if spectra-sqlite is installed, else files with spectra-fs, else memory) under
``$SPECTRA_HOME`` (default ``~/.local/share/spectra``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import sys
from asyncio import Runner
from collections.abc import Callable
from typing import Any

from ..config import build_engine
from ..engine import EventType, RunStatus, SessionEngine
from ..errors import SpectraError
from ..ids import validate_user_id
from ..logging import configure_logging
from ._common import add_config_option, fail, load
from ._sessions import describe


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="run one turn and stream the answer")
    run.add_argument("prompt", help="what to say")
    _common(run)
    run.set_defaults(handler=lambda a: _main(a, _run))
    chat = sub.add_parser("chat", help="an interactive conversation (type /help)")
    _common(chat)
    chat.set_defaults(handler=lambda a: _main(a, _chat))


def _common(p: Any) -> None:
    p.add_argument("--session", "-s", metavar="ID", help="continue this session")
    add_config_option(p)
    p.add_argument("--user", "-u", default=None, help="user id (default: your login name)")
    p.add_argument("--verbose", "-v", action="store_true", help="log run events on stderr")


def _engine(args: argparse.Namespace) -> SessionEngine:
    config, registry = load(args.config)
    engine: SessionEngine = build_engine(config, registry)
    return engine


def _main(args: argparse.Namespace, body: Callable[[Runner, SessionEngine, Any], int]) -> int:
    """Build the engine, run ``body`` on one event loop, then stop the engine and close
    the store. Ctrl-C at any point exits with 130: the prompt is read on the main thread
    (between turns no loop is running), and a turn in progress is cancelled."""
    configure_logging("info" if args.verbose else "warning")
    try:
        args.user = _login() if args.user is None else validate_user_id(args.user)
        engine = _engine(args)
    except SpectraError as exc:
        return fail(exc, 2)
    with asyncio.Runner() as runner:
        try:
            engine.start()
            return body(runner, engine, args)
        except SpectraError as exc:
            return fail(exc)
        except KeyboardInterrupt:
            return 130
        finally:
            runner.run(_close(engine))


async def _close(engine: SessionEngine) -> None:
    await engine.stop(drain=False)
    await engine.session_manager.store.aclose()


def _login() -> str:
    """The login name as the default user id, or "local" if it is not a valid one."""
    try:
        return validate_user_id(getpass.getuser())
    except Exception:
        return "local"


async def _turn(engine: SessionEngine, args: argparse.Namespace, text: str) -> tuple[str, bool]:
    """Stream one turn to stdout; returns the session id and whether it completed."""
    stream = await engine.run_streaming(args.user, text, args.session)
    ok = False
    session_id = args.session or ""
    async for event in stream:
        session_id = event.session_id
        if event.type is EventType.MESSAGE_UPDATE and event.delta:
            if event.delta.get("type") == "text":
                sys.stdout.write(event.delta["text"])
                sys.stdout.flush()
        elif event.type is EventType.TOOL_EXECUTION_START:
            print(f"\n[tool {event.tool_name}]", file=sys.stderr)
        elif event.type is EventType.MESSAGE_END:
            sys.stdout.write("\n")
        elif event.type is EventType.RUN_END:
            ok = event.status is RunStatus.COMPLETED
            if not ok:
                print(f"run {event.status}: {event.error}", file=sys.stderr)
    return session_id, ok


def _run(runner: Runner, engine: SessionEngine, args: argparse.Namespace) -> int:
    session_id, ok = runner.run(_turn(engine, args, args.prompt))
    print(
        f"session {session_id} (continue with: spectra run --session {session_id} ...)",
        file=sys.stderr,
    )
    return 0 if ok else 1


HELP = """commands:
  /tree              show the session's tree (* marks the leaf)
  /show              show the active branch
  /branch ENTRY_ID   move the leaf to an entry: the next message starts a new branch there
  /fork [ENTRY_ID]   copy the branch up to an entry (default: the leaf) into a new session
  /resume SESSION_ID continue another session of yours
  /sessions          list your sessions
  /quit              leave (also Ctrl-D)"""


def _chat(runner: Runner, engine: SessionEngine, args: argparse.Namespace) -> int:
    if isinstance(sys.stdin, io.TextIOWrapper):  # bytes that are not UTF-8: our error
        sys.stdin.reconfigure(errors="surrogateescape")
    print(f"spectra chat as {args.user!r}; type /help for commands", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            raise
        line = line.strip()
        if not line:
            continue
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            print("error: that line is not valid UTF-8 text; nothing was sent", file=sys.stderr)
            continue
        try:
            if runner.run(_command(engine, args, line)):
                return 0
        except SpectraError as exc:
            print(f"error: {exc}", file=sys.stderr)


async def _command(engine: SessionEngine, args: argparse.Namespace, line: str) -> bool:
    """Do what one line of the chat says; True to leave."""
    manager = engine.session_manager
    if not line.startswith("/"):
        args.session, _ = await _turn(engine, args, line)
        return False
    cmd, _, arg = line.partition(" ")
    arg = arg.strip()
    if cmd in ("/quit", "/exit"):
        return True
    if cmd == "/help":
        print(HELP)
    elif cmd == "/sessions":
        page = await manager.list()
        for info in page:
            if info.user_id == args.user:
                print(f"{info.id}  {info.updated_at:%Y-%m-%d %H:%M}  v{info.version}")
    elif cmd == "/resume":
        session = await manager.load(arg)
        if session.user_id not in (None, args.user):
            raise SpectraError(f"session {arg!r} not found")
        args.session = session.id
        print(f"resumed {session.id}")
    elif args.session is None:
        print("no session yet: say something first, or /resume ID")
    elif cmd in ("/tree", "/show"):
        session = await manager.load(args.session)
        if cmd == "/show":
            for e in manager.get_branch(session):
                print(f"{e.id}  {describe(e)}")
        else:
            _print_tree(manager, session)
    elif cmd == "/branch":
        session = await manager.load(args.session)
        manager.branch(session, arg or None)
        await manager.save(session)
        print(f"leaf moved to {arg or 'the start'}")
    elif cmd == "/fork":
        fork = await manager.fork(args.session, arg or None)
        args.session = fork.id
        print(f"forked into {fork.id}; now talking there")
    else:
        print(f"unknown command {cmd}; type /help")
    return False


def _print_tree(manager: Any, session: Any) -> None:
    from ._sessions import draw_tree

    for line in draw_tree(manager, session):
        print(line)
