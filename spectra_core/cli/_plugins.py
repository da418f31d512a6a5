"""``spectra plugins``: installed plugins, their backends, and broken ones."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..plugins import BackendKind, load_plugins


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list installed plugins and the backends they provide")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = load_plugins()
    plugins: list[dict[str, Any]] = [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "status": p.status,
            "error": p.error,
            "backends": p.backends,
        }
        for p in registry.plugins
    ]
    if args.json:
        print(json.dumps({"plugins": plugins, "errors": registry.errors}, indent=2))
        return 0
    if all(p["distribution"] == "spectra-core" for p in plugins):
        print(
            "no plugins installed besides the built-in backends (e.g.: pip install spectra-memory)"
        )
    for p in plugins:
        print(f"{p['distribution']} {p['version']}  [{p['name']}]  {p['status']}")
        for kind in BackendKind:
            names = p["backends"].get(kind.value)
            if names:
                print(f"    {kind.label}: {', '.join(names)}")
        if p["error"]:
            print(f"    error: {p['error']}")
    for err in registry.errors:
        if "more than one distribution" in err:
            print(f"error: {err}")
    return 0
