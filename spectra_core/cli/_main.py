"""Entry point and sub-command dispatch of the ``spectra`` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from ..plugins import PluginRegistry, load_plugins
from . import _check, _plugins, _run, _sessions
from ._commands import add_plugin_commands


def build_parser(registry: PluginRegistry | None = None) -> argparse.ArgumentParser:
    """The ``spectra`` parser: the built-in commands and those of installed plugins
    (problems adding a plugin's commands are warned about on stderr)."""
    parser = argparse.ArgumentParser(
        prog="spectra", description="spectra: serve conversational AI agents in production."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _plugins.add_parser(sub)
    _check.add_parser(sub)
    _sessions.add_parser(sub)
    _run.add_parsers(sub)
    for problem in add_plugin_commands(sub, registry or load_plugins()):
        with contextlib.suppress(OSError):
            print(f"warning: {problem}", file=sys.stderr, flush=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad usage or config,
    130 interrupted by Ctrl-C). Failures are one line on stderr each, never a traceback."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    for position, arg in enumerate(arguments, 1):
        if not _is_utf8(arg):
            _error(
                f"argument {position} is not valid UTF-8 text: {os.fsencode(arg)!r}; "
                "spectra takes its arguments in UTF-8"
            )
            return 2
    try:
        args = build_parser().parse_args(arguments)
        status: int = args.handler(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (spectra sessions list | head)
        _discard_stdout()
        return 1
    except OSError as exc:  # stdout on a full disk, and the like
        where = f"{exc.filename}: " if exc.filename else "cannot write the output: "
        _error(where + (exc.strerror or str(exc)))
        _discard_stdout()
        return 1
    return status


def _is_utf8(text: str) -> bool:
    """False for text decoded from bytes that are not UTF-8 (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(line: str) -> None:
    with contextlib.suppress(OSError):
        print(f"error: {line}", file=sys.stderr, flush=True)


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what could not be
    written does not fail again at exit (what Python's docs advise for SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
