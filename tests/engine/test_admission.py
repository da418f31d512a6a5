"""Admission: input checked before anything is claimed, images kept, and no run that is
being admitted while stop() runs starts after stop() has returned."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TypeVar

import attrs
import pytest

from spectra_core import (
    EngineDrainingError,
    ImageContent,
    InvalidArgumentError,
    MessageEntry,
    SessionManager,
    TextContent,
    UserMessage,
)
from spectra_core.agent.builtin import ScriptedProvider
from spectra_core.engine import RunStatus, SessionEngine
from spectra_core.testing import FakeClock

from ._doubles import FaultyStore, bounded

pytestmark = pytest.mark.needs_plugins

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()


T = TypeVar("T")


def _unchecked(build: Callable[[], T]) -> T:
    """``build()`` with the attrs validators off (what a caller bypassing them holds)."""
    with attrs.validators.disabled():
        return build()


def started(manager: SessionManager, clock: FakeClock, **kw: object) -> SessionEngine:
    engine = SessionEngine(manager, clock=clock, **kw)  # type: ignore[arg-type]
    engine.start()
    return engine


@pytest.mark.parametrize(
    ("user_id", "input", "named"),
    [
        ("u", "caf\udce9", "input holds a lone surrogate (U+DCE9) at index 3"),
        # built past the models' own check, as a caller bypassing it could
        (
            "u",
            _unchecked(lambda: UserMessage([TextContent("a"), TextContent("\ud83d")])),
            "content[1].text",
        ),
        ("u\udc80", "hi", "user_id"),
        ("u\x00", "hi", "user_id"),
        ("u" * 257, "hi", "user_id"),
        ("u", b"hi", "input must be a string or a UserMessage"),
        (
            "u",
            _unchecked(lambda: UserMessage([ImageContent(PNG, "text/html")])),
            "content[0].mime_type",
        ),
        (
            "u",
            _unchecked(lambda: UserMessage([ImageContent("not base64!", "image/png")])),
            "content[0].data",
        ),
        ("u", _unchecked(lambda: UserMessage([ImageContent("", "image/png")])), "content[0].data"),
        (
            "u",
            _unchecked(lambda: UserMessage(["raw string block"])),
            "content[0]: expected TextContent",
        ),  # type: ignore[list-item]
        ("u", UserMessage([]), "input is empty"),
    ],
)
async def test_bad_input_is_refused_before_admission(
    manager: SessionManager, clock: FakeClock, user_id: str, input: object, named: str
) -> None:
    engine = started(manager, clock)
    with pytest.raises(InvalidArgumentError) as info:
        await engine.run_streaming(user_id, input)  # type: ignore[arg-type]
    assert named in str(info.value)
    assert engine.active_session_count == 0
    assert not (await manager.list()).sessions


async def test_images_are_stored_and_sent_to_the_model(
    manager: SessionManager, clock: FakeClock
) -> None:
    provider = ScriptedProvider(["a cat", "still a cat"])
    engine = started(manager, clock, provider=provider)
    image = ImageContent(PNG, "image/png")
    result = await engine.run("u", UserMessage([TextContent("what is this?"), image]))
    assert result.status is RunStatus.COMPLETED
    sent = provider.requests[0].messages[-1]
    assert isinstance(sent, UserMessage) and sent.content == (TextContent("what is this?"), image)
    # an image alone is a message too
    alone = await engine.run("u", UserMessage([image]), result.session_id)
    assert alone.status is RunStatus.COMPLETED
    assert provider.requests[1].messages[-1] == UserMessage([image])
    session = await manager.load(result.session_id)
    users = [e.message for e in session.entries if isinstance(e, MessageEntry)][::2]
    assert users == [UserMessage([TextContent("what is this?"), image]), UserMessage([image])]


@pytest.mark.parametrize("drain", [True, False])
async def test_a_run_being_admitted_during_stop_never_starts(clock: FakeClock, drain: bool) -> None:
    store = FaultyStore()
    manager = SessionManager(store, clock=clock)
    provider = ScriptedProvider(["never"])
    engine = started(manager, clock, provider=provider)
    store.pause_saves()  # the new session's first save waits
    admitting = asyncio.create_task(engine.run("u", "hi"))
    await bounded(store.entered.wait())
    stopping = asyncio.create_task(engine.stop(drain=drain))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not stopping.done(), "stop() returned while a run was being admitted"
    store.resume()
    with pytest.raises(EngineDrainingError):
        await bounded(admitting)
    await bounded(stopping)
    assert provider.requests == []  # the model was never called
    assert engine.active_session_count == 0
    assert not (await manager.list()).sessions  # the session made for it was removed


async def test_a_run_waiting_for_a_busy_session_is_refused_by_stop(
    manager: SessionManager, clock: FakeClock
) -> None:
    from spectra_core.testing import GatedProvider

    gated = GatedProvider()
    engine = started(manager, clock, provider=gated, busy="wait")
    first = await engine.run_streaming("u", "one")
    async for event in first:
        session_id = event.session_id
        break
    await gated.started.wait()
    waiting = asyncio.create_task(engine.run("u", "two", session_id))
    for _ in range(5):
        await asyncio.sleep(0)
    stopping = asyncio.create_task(engine.stop(drain=False))
    with pytest.raises(EngineDrainingError):
        await bounded(waiting)
    await bounded(stopping)
    assert gated.calls == 1
