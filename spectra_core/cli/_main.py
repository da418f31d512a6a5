"""Entry point and sub-command dispatch of the ``spectra`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _check, _plugins, _run, _sessions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectra", description="spectra: serve conversational AI agents in production."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _plugins.add_parser(sub)
    _check.add_parser(sub)
    _sessions.add_parser(sub)
    _run.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad usage or config)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
