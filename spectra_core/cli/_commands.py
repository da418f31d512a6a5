"""Sub-commands that plugins add through the ``spectra_register_commands`` hook."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import PluginError
from ..plugins import COMMANDS_HOOK, PluginRegistry

__all__ = ["add_plugin_commands"]


class _Subparsers:
    """The sub-parsers action as one plugin sees it: a name already taken is refused."""

    def __init__(self, sub: Any, plugin: str) -> None:
        self._sub = sub
        self._plugin = plugin

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        taken = [name, *kwargs.get("aliases", ())]
        for each in taken:
            if each in self._sub.choices:
                raise PluginError(f"command {each!r} already exists")
        parser: argparse.ArgumentParser = self._sub.add_parser(name, **kwargs)
        return parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


def add_plugin_commands(sub: Any, registry: PluginRegistry) -> list[str]:
    """Let every loaded plugin add its commands to ``sub``; returns one line per plugin
    whose hook failed (its other commands stay usable)."""
    problems = []
    for impl in getattr(registry.pm.hook, COMMANDS_HOOK).get_hookimpls():
        try:
            impl.function(subparsers=_Subparsers(sub, impl.plugin_name))
        except Exception as exc:
            problems.append(f"plugin {impl.plugin_name!r} could not add its commands: {exc}")
    return problems
