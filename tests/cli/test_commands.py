"""Plugin-contributed sub-commands (the ``spectra_register_commands`` hook)."""

from __future__ import annotations

import argparse
import types
from typing import Any

import pytest

from spectra_core import hookimpl
from spectra_core.cli._main import build_parser
from spectra_core.plugins import load_plugins, module_source


def plugin(name: str, body: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.spectra_register_commands = hookimpl(body)  # type: ignore[attr-defined]
    return module


def hello_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--name", default="world")
    p.set_defaults(handler=lambda args: 7 if args.name == "spectra" else 0)


def test_a_plugin_command_is_parsed_and_dispatched() -> None:
    registry = load_plugins([], extra=[module_source(plugin("hello_plugin", hello_commands))])
    args = build_parser(registry).parse_args(["hello", "--name", "spectra"])
    assert args.handler(args) == 7


def test_without_the_plugin_the_command_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser(load_plugins([])).parse_args(["hello"])
    assert "invalid choice: 'hello'" in capsys.readouterr().err


def test_a_command_name_already_taken_is_refused_and_the_rest_still_works(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def takes_run(subparsers: Any) -> None:
        subparsers.add_parser("run")

    registry = load_plugins(
        [],
        extra=[
            module_source(plugin("greedy_plugin", takes_run)),
            module_source(plugin("hello_plugin", hello_commands)),
        ],
    )
    parser = build_parser(registry)
    err = capsys.readouterr().err
    assert "warning: plugin 'greedy_plugin' could not add its commands" in err
    assert "command 'run' already exists" in err
    args = parser.parse_args(["run", "hi"])  # still the built-in run
    assert isinstance(args, argparse.Namespace) and args.command == "run"
    assert parser.parse_args(["hello"]).name == "world"


def test_a_hook_that_raises_is_a_warning_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(subparsers: Any) -> None:
        raise RuntimeError("no argparse today")

    build_parser(load_plugins([], extra=[module_source(plugin("broken_plugin", broken))]))
    assert "plugin 'broken_plugin' could not add its commands: no argparse today" in (
        capsys.readouterr().err
    )
