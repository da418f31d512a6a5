"""``spectra check CONFIG``: validate a config file, exit 2 listing every problem."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..config import check_buildable, load_config
from ..errors import ConfigError
from ..plugins import load_plugins


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="validate a config file (exit 0 if valid, 2 if not)")
    p.add_argument("config", metavar="CONFIG", help="the TOML file to check")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = load_plugins()
    try:
        config = load_config(args.config, registry)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    errors = asyncio.run(check_buildable(config, registry))
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        return 2
    parts = [
        f"store={config.store.backend}" if config.store else None,
        f"limiters={len(config.limiters)}" if config.limiters else None,
        f"breaker={config.breaker.backend}" if config.breaker else None,
        f"model={config.model.backend}" if config.model else None,
    ]
    print(f"{config.source}: ok ({', '.join(p for p in parts if p) or 'nothing configured'})")
    return 0
