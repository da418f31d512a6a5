"""spectra_core.engine.events: RunEvent's JSON form and its round trip through the
converter (what an event log does), a streaming message's view included."""

from __future__ import annotations

import attrs

from spectra_core import AssistantMessage, TextContent, ToolCall, ToolResultMessage
from spectra_core.agent import TextDelta, ToolCallDelta
from spectra_core.engine import EventType, RunEvent, RunStatus
from spectra_core.engine._partial import MessageBuilder
from spectra_core.serde import converter


def event(type: EventType, seq: int, **fields: object) -> RunEvent:
    return RunEvent(type=type, session_id="s1", run_id="r1", seq=seq, timestamp=1.5, **fields)  # type: ignore[arg-type]


def test_events_round_trip_through_the_converter() -> None:
    builder = MessageBuilder(model="m", provider="p")
    builder.add(TextDelta("Hel"))
    update = event(
        EventType.MESSAGE_UPDATE,
        3,
        turn=1,
        message=builder.add(ToolCallDelta(0, id="c1", name="f", arguments_delta='{"a": 1')),
        delta={"type": "tool_call", "index": 0, "id": "c1", "name": "f", "arguments_delta": "x"},
    )
    complete = AssistantMessage("Hello", model="m", provider="p", stop_reason="stop")
    events = [
        event(EventType.MESSAGE_START, 1, turn=1, message=builder.view()),
        update,
        event(EventType.MESSAGE_END, 4, turn=1, message=complete),
        event(
            EventType.TOOL_EXECUTION_END,
            5,
            tool_call_id="c1",
            tool_name="f",
            result=ToolResultMessage("c1", "f", "ok"),
            is_error=False,
        ),
        event(EventType.RUN_END, 6, status=RunStatus.COMPLETED, message=complete),
    ]
    for e in events:
        data = e.to_dict()
        assert "_message" not in data
        back = converter.structure(data, RunEvent)
        assert back == attrs.evolve(e, message=e.message)  # a view comes back built
        assert back.to_dict() == data
    assert update.message == AssistantMessage(
        [TextContent("Hel"), ToolCall("c1", "f", {"_partial_arguments": '{"a": 1'})],
        model="m",
        provider="p",
    )
    assert update.to_dict()["message"]["content"][1]["arguments"] == {
        "_partial_arguments": '{"a": 1'
    }


def test_an_event_without_a_message_has_none() -> None:
    e = event(EventType.AGENT_START, 1)
    assert e.message is None and e.partial is None and e.assistant_message is None
    assert e.to_dict() == {
        "type": EventType.AGENT_START,
        "session_id": "s1",
        "run_id": "r1",
        "seq": 1,
        "timestamp": 1.5,
    }
