"""Agents from a config file: one ``[agents.<name>]`` table per agent.

```toml
[agents.researcher]
model = "gpt-4o-mini"
provider = "openai"
system_prompt = "You find sources and summarise them."
max_turns = 5
tools = ["search"]            # names of tools the application passes in
description = "Finds and summarises sources."
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..agent.tools import Tool
from ..errors import ConfigError, InvalidArgumentError
from ..models import ModelRef
from ..plugins import closest
from ._agents import AgentConfig, validate_agent_name

__all__ = ["AgentTable", "check_agents", "load_agents", "parse_agents"]


@attrs.frozen
class AgentTable:
    """The keys of one ``[agents.<name>]`` table."""

    model: str | None = None
    provider: str | None = None
    system_prompt: str | None = None
    max_turns: int = 10
    tools: list[str] = attrs.field(factory=list)
    description: str = ""


def parse_agents(
    data: Mapping[str, Any],
    *,
    tools: Mapping[str, Tool] | None = None,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
) -> dict[str, AgentConfig]:
    """The agents of a parsed config document's ``[agents]`` table (other sections are
    ignored; ``${VAR}`` is interpolated from ``env``, default the environment). Tool
    names are looked up in ``tools``; with ``tools=None`` they are not checked and the
    agents get none. Raises ConfigError naming the file and key path of every problem."""
    from ..config import interpolate

    raw, errors = interpolate(dict(data).get("agents", {}), "$.agents", env)
    agents, errs = check_agents(raw, tools)
    errors += errs
    if errors:
        raise ConfigError([f"{source}: {e}" for e in errors])
    return agents


def check_agents(
    raw: Any, tools: Mapping[str, Tool] | None = None
) -> tuple[dict[str, AgentConfig], list[str]]:
    """The agents of an (interpolated) ``[agents]`` table and ``"$.path: problem"`` lines."""
    from ..config import _structure

    if not isinstance(raw, dict):
        return {}, [f"$.agents: expected a table of agents, got {raw!r}"]
    errors: list[str] = []
    out: dict[str, AgentConfig] = {}
    for name, table in raw.items():
        path = f"$.agents.{name}"
        try:
            validate_agent_name(name)
        except InvalidArgumentError as exc:
            errors.append(f"{path}: {exc}")
            continue
        parsed, errs = _structure(table, AgentTable, path)
        errors += errs
        if parsed is None:
            continue
        chosen, errs = _tools(parsed.tools, tools, path)
        errors += errs
        if parsed.provider and not parsed.model:
            errors.append(f"{path}: 'provider' is given without 'model'")
        try:
            out[name] = AgentConfig(
                model=ModelRef(parsed.model, provider=parsed.provider) if parsed.model else None,
                system_prompt=parsed.system_prompt,
                tools=tuple(chosen),
                max_turns=parsed.max_turns,
                description=parsed.description,
            )
        except InvalidArgumentError as exc:
            errors.append(f"{path}: {exc}")
    return out, errors


def _tools(
    names: list[str], tools: Mapping[str, Tool] | None, path: str
) -> tuple[list[Tool], list[str]]:
    if tools is None:
        return [], []
    chosen, errors = [], []
    for i, tool_name in enumerate(names):
        found = tools.get(tool_name)
        if found is None:
            guess = closest(tool_name, tools)
            hint = f"; did you mean {guess!r}?" if guess else ""
            known = ", ".join(repr(n) for n in sorted(tools)) or "none given"
            errors.append(f"{path}.tools[{i}]: unknown tool {tool_name!r}{hint} (tools: {known})")
        else:
            chosen.append(found)
    return chosen, errors


def load_agents(
    path: str | os.PathLike[str], *, tools: Mapping[str, Tool] | None = None
) -> dict[str, AgentConfig]:
    """:func:`parse_agents` of a TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    return parse_agents(data, tools=tools, source=str(p))
