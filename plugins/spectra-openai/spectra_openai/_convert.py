"""Our messages and tools as an OpenAI chat completions request."""

from __future__ import annotations

import json
from typing import Any

from spectra_core import (
    AssistantMessage,
    ImageContent,
    TextContent,
    ToolResultMessage,
    UserMessage,
)
from spectra_core.agent import ModelRequest, ToolSpec, clean_json

__all__ = ["build_params", "to_openai_messages", "to_openai_tools"]


def _data_url(image: ImageContent) -> dict[str, Any]:
    return {
        "type": "image_url",
        "image_url": {"url": f"data:{image.mime_type};base64,{image.data}"},
    }


def _user_content(blocks: tuple[TextContent | ImageContent, ...]) -> str | list[dict[str, Any]]:
    """A plain string when there is only text (what every server accepts), parts otherwise."""
    if all(isinstance(b, TextContent) for b in blocks):
        return "".join(b.text for b in blocks if isinstance(b, TextContent))
    return [
        {"type": "text", "text": b.text} if isinstance(b, TextContent) else _data_url(b)
        for b in blocks
    ]


def _assistant(msg: AssistantMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": msg.text}
    calls = msg.tool_calls
    if calls:
        out["content"] = msg.text or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(clean_json(c.arguments))},
            }
            for c in calls
        ]
    return out


def to_openai_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """System prompt, then each message; thinking blocks are not sent back.

    Tool results become ``role: "tool"`` messages (text only, as the API wants); images
    a tool returned follow in one user message after the run of tool results.
    """
    out: list[dict[str, Any]] = []
    if request.system_prompt:
        out.append({"role": "system", "content": request.system_prompt})
    pending_images: list[dict[str, Any]] = []

    def flush_images() -> None:
        if pending_images:
            out.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Images returned by the tools:"},
                        *pending_images,
                    ],
                }
            )
            pending_images.clear()

    for msg in request.messages:
        if isinstance(msg, ToolResultMessage):
            images = [_data_url(b) for b in msg.content if isinstance(b, ImageContent)]
            text = msg.text
            if images:
                note = f"[{len(images)} image(s) attached below]"
                text = f"{text}\n{note}" if text else note
                pending_images.extend(images)
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id, "content": text})
            continue
        flush_images()
        if isinstance(msg, UserMessage):
            out.append({"role": "user", "content": _user_content(msg.content)})
        else:
            out.append(_assistant(msg))
    flush_images()
    return out


def to_openai_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """``ToolSpec`` as OpenAI function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            },
        }
        for t in tools
    ]


def build_params(request: ModelRequest, model: str) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` for one streamed call.

    Surrogate code points in the messages (which UTF-8, hence the HTTP body, cannot
    carry) are sent as U+FFFD."""
    params: dict[str, Any] = {
        "model": model,
        "messages": clean_json(to_openai_messages(request)),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        params["tools"] = to_openai_tools(request.tools)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    return params
