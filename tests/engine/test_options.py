"""Run options are checked before the engine claims anything for the run."""

from __future__ import annotations

from typing import Any

import pytest

from spectra_core import InvalidArgumentError, SessionManager
from spectra_core.agent.tools import tool
from spectra_core.engine import RunOptions, RunStatus, SessionEngine
from spectra_core.testing import FakeClock

pytestmark = pytest.mark.needs_plugins


@tool
def noop() -> str:
    """Do nothing."""
    return ""


BAD_OPTIONS: list[tuple[Any, str]] = [
    ({"timeout_ms": "5s"}, "timeout_ms"),
    ({"timeout_ms": 0}, "timeout_ms"),
    ({"timeout_ms": float("nan")}, "timeout_ms"),
    ({"max_turns": 0}, "max_turns"),
    ({"max_turns": "3"}, "max_turns"),
    ({"max_turns": True}, "max_turns"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": float("inf")}, "temperature"),
    ({"tenant_id": 5}, "tenant_id"),
    ({"tenant_id": ""}, "tenant_id"),
    ({"tenant_id": "t\udc80"}, "tenant_id"),
    ({"system_prompt": b"bytes"}, "system_prompt"),
    ({"system_prompt": "be \ud800 brief"}, "system_prompt"),
    ({"tools": "noop"}, "tools"),
    ({"tools": [print]}, "tools[0]"),
    ({"tools": [noop, noop]}, "two tools are named 'noop'"),
    ({"metadata": {1: "x"}}, "metadata"),
    ({"metadata": {"x": object()}}, "metadata"),
    ({"metadata": {"x": "\udcff"}}, "metadata"),
    ({"metadata": []}, "metadata"),
    ({"model": 5}, "model"),
    ({"model": {"provider": "echo"}}, "model"),
    ({"model": ""}, "model"),
    ({"model": {"id": "m", "options": {"k": {1, 2}}}}, "ModelRef.options"),
    ({"timeout": 5}, "unknown run option 'timeout'; did you mean 'timeout_ms'?"),
    ({3: 4}, "unknown run option"),
    ("fast", "options must be a RunOptions or a dict"),
    ([("max_turns", 1)], "options must be a RunOptions or a dict"),
]


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS)
async def test_bad_option_is_refused_before_anything_is_claimed(
    manager: SessionManager, clock: FakeClock, options: Any, named: str
) -> None:
    engine = SessionEngine(manager, clock=clock)
    engine.start()
    first = await engine.run("u", "hi")
    for session_id in (None, first.session_id):
        with pytest.raises(InvalidArgumentError) as info:
            await engine.run_streaming("u", "hi", session_id, options)
        assert named in str(info.value)
    assert engine.active_session_count == 0
    assert len((await manager.list()).sessions) == 1  # nothing was created
    # the session was not left claimed: the next run on it goes through
    again = await engine.run("u", "again", first.session_id)
    assert again.status is RunStatus.COMPLETED
    await engine.stop(drain=True)


def test_run_options_validate_when_built() -> None:
    with pytest.raises(InvalidArgumentError, match="'max_turns': must be at least 1"):
        RunOptions(max_turns=0)
    with pytest.raises(InvalidArgumentError, match="'timeout_ms'"):
        RunOptions(timeout_ms="5s")  # type: ignore[arg-type]
    options = RunOptions.coerce(
        {"model": "m", "timeout_ms": 2.5, "tools": [noop], "metadata": {"a": [1]}}
    )
    assert options.model is not None and options.model.id == "m"
    assert options.tools == (noop,) and options.timeout_ms == 2.5
