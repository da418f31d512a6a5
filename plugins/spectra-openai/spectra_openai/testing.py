"""FakeOpenAIServer: a scriptable OpenAI-compatible server on 127.0.0.1 for tests.

Needs the ``test`` extra (starlette, uvicorn). It speaks ``POST /v1/chat/completions``
with ``stream: true`` as server-sent events, answering each request with the next
scripted reply, and records every request it receives::

    with FakeOpenAIServer() as server:
        server.script(Completion(text="Hello!"), ErrorReply(429, headers={"Retry-After": "2"}))
        provider = server.provider()
        ...
        assert server.requests[0].json["messages"][-1]["content"] == "hi"

Replies: :class:`Completion` (text, reasoning, tool calls, usage, split into many
chunks; can stop early, drop the connection or wait on a gate), :class:`RawStream`
(exact SSE data lines, for malformed streams), :class:`ErrorReply` (an HTTP error), or
a callable taking the request body and returning one of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ._provider import OpenAIProvider

__all__ = [
    "Completion",
    "ErrorReply",
    "FakeOpenAIServer",
    "FakeToolCall",
    "RawStream",
    "RecordedRequest",
    "Reply",
]


@attrs.frozen
class FakeToolCall:
    """A tool call the fake model makes; ``arguments`` is sent as JSON text (a string is
    sent verbatim, so it can be invalid JSON)."""

    id: str
    name: str
    arguments: str | Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@attrs.frozen(kw_only=True)
class Completion:
    """A streamed answer, split into chunks of ``chunk_size`` characters.

    Order: reasoning deltas (``reasoning_content``), text deltas, tool calls (id and name
    in a first chunk, arguments in pieces; several calls are parallel calls), then a
    chunk with ``finish_reason`` (default ``"tool_calls"`` with tool calls, else
    ``"stop"``), then a usage chunk (``choices: []``) unless ``usage`` is ``None``, then
    ``[DONE]``. ``model`` defaults to the requested model.

    Failure modes: ``stop_after=N`` sends only the first N chunks, then ends the body
    cleanly without ``[DONE]`` (or drops the connection mid-body with ``abort=True``);
    ``gate`` makes the server send ``gate_after`` chunks then wait until the event is
    set (:meth:`FakeOpenAIServer.stop` sets it).
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: Sequence[FakeToolCall] = ()
    finish_reason: str | None = None
    usage: tuple[int, int] | None = (10, 5)
    cached_tokens: int | None = None
    chunk_size: int = 4
    model: str | None = None
    stop_after: int | None = None
    abort: bool = False
    gate: threading.Event | None = None
    gate_after: int = 0

    def chunks(self, model: str) -> list[dict[str, Any]]:
        """The chunk objects of this answer (before any ``stop_after`` cut)."""
        model = self.model or model
        out: list[dict[str, Any]] = []

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        out.append(chunk({"role": "assistant", "content": ""}))
        for piece in _pieces(self.reasoning, self.chunk_size):
            out.append(chunk({"reasoning_content": piece}))
        for piece in _pieces(self.text, self.chunk_size):
            out.append(chunk({"content": piece}))
        for n, call in enumerate(self.tool_calls):
            head = {"index": n, "id": call.id, "type": "function"}
            out.append(
                chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
            )
            for piece in _pieces(call.arguments_json, self.chunk_size):
                out.append(chunk({"tool_calls": [{"index": n, "function": {"arguments": piece}}]}))
        finish = self.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        out.append(chunk({}, finish))
        if self.usage is not None:
            prompt, completion = self.usage
            usage: dict[str, Any] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if self.cached_tokens is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
            out.append({**chunk({}), "choices": [], "usage": usage})
        return out


@attrs.frozen(kw_only=True)
class RawStream:
    """Exact SSE events: a mapping is sent as ``data: <json>``, a string verbatim as
    ``data: <string>`` (so ``"{not json"`` is a malformed chunk). ``done`` appends
    ``data: [DONE]``; ``abort`` drops the connection after the events."""

    events: Sequence[Mapping[str, Any] | str]
    done: bool = True
    abort: bool = False


@attrs.frozen
class ErrorReply:
    """An HTTP error with an OpenAI-style body ``{"error": {"message", "type", "code"}}``
    (or ``body`` verbatim) and extra ``headers`` such as ``Retry-After``."""

    status: int
    message: str = "fake error"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: Any = None


Reply: TypeAlias = Completion | RawStream | ErrorReply
ReplyOrFactory: TypeAlias = Reply | Callable[[dict[str, Any]], Reply]


@attrs.frozen
class RecordedRequest:
    """A request the server received: method, path, lower-cased headers, JSON body."""

    method: str
    path: str
    headers: Mapping[str, str]
    json: Any


class _Abort(Exception):
    """Raised inside a response body to make the server drop the connection."""


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _sse(data: Mapping[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


class FakeOpenAIServer:
    """An OpenAI-compatible server in a background thread, on a free port of 127.0.0.1.

    Use as a context manager or call :meth:`start` / :meth:`stop`. :attr:`url` is the
    ``base_url`` (ends with ``/v1``); :meth:`script` queues replies; :attr:`requests`
    lists what was received. With the script empty, the server answers ``default``
    (a reply or a callable), or HTTP 400 saying the script ran out.
    """

    def __init__(self, *, default: ReplyOrFactory | None = None) -> None:
        self.default = default
        self._lock = threading.Lock()
        self._script: deque[ReplyOrFactory] = deque()
        self._requests: list[RecordedRequest] = []
        self._gates: list[threading.Event] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._sock: socket.socket | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base_url to give a client: ``http://127.0.0.1:<port>/v1``."""
        if not self.port:
            raise RuntimeError("FakeOpenAIServer is not started; call start() first")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 10.0) -> FakeOpenAIServer:
        """Bind a free port, serve in a thread, return once the app is up."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAIServer is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_config=None,
            log_level="critical",
            access_log=False,
            lifespan="on",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-openai"
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"FakeOpenAIServer did not start within {timeout}s")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Release every gate, shut the server down and wait for its thread."""
        with self._lock:
            for gate in self._gates:
                gate.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            alive = self._thread.is_alive()
            self._thread = None
            if alive:
                raise RuntimeError(f"FakeOpenAIServer did not stop within {timeout}s")
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server = None
        self._ready.clear()
        self.port = 0

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- script and records -----------------------------------------------------------

    def script(self, *replies: ReplyOrFactory) -> None:
        """Queue replies, answered in order, one per chat completion request."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the script, the recorded requests and ``default``."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self.default = None

    def provider(self, **kwargs: Any) -> OpenAIProvider:
        """An :class:`~spectra_openai.OpenAIProvider` pointed at this server."""
        kwargs.setdefault("api_key", "sk-fake")
        return OpenAIProvider(base_url=self.url, **kwargs)

    # --- the app ----------------------------------------------------------------------

    def _app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._ready.set()
            yield

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        recorded = RecordedRequest(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        with self._lock:
            self._requests.append(recorded)
            number = len(self._requests)
            item = self._script.popleft() if self._script else self.default
        if item is None:
            return _error_response(
                ErrorReply(
                    400,
                    f"FakeOpenAIServer has no scripted reply left for request #{number}; "
                    "call server.script(...)",
                )
            )
        reply = item(body if isinstance(body, dict) else {}) if callable(item) else item
        if isinstance(reply, ErrorReply):
            return _error_response(reply)
        if isinstance(reply, RawStream):
            return _stream(self._raw_events(reply))
        model = body.get("model", "fake-model") if isinstance(body, dict) else "fake-model"
        if reply.gate is not None:
            with self._lock:
                self._gates.append(reply.gate)
        return _stream(self._completion_events(reply, str(model)))

    async def _raw_events(self, reply: RawStream) -> AsyncIterator[bytes]:
        for event in reply.events:
            yield _sse(event)
        if reply.abort:
            raise _Abort("FakeOpenAIServer drops the connection (RawStream.abort)")
        if reply.done:
            yield b"data: [DONE]\n\n"

    async def _completion_events(self, reply: Completion, model: str) -> AsyncIterator[bytes]:
        chunks = reply.chunks(model)
        cut = reply.stop_after is not None
        if cut:
            chunks = chunks[: reply.stop_after]
        for n, chunk in enumerate(chunks):
            if reply.gate is not None and n == reply.gate_after:
                await asyncio.to_thread(reply.gate.wait)
            yield _sse(chunk)
        if reply.gate is not None and reply.gate_after >= len(chunks):
            await asyncio.to_thread(reply.gate.wait)
        if reply.abort:
            raise _Abort("FakeOpenAIServer drops the connection (Completion.abort)")
        if not cut:
            yield b"data: [DONE]\n\n"


def _stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


def _error_response(reply: ErrorReply) -> Response:
    body = reply.body
    if body is None:
        kind = "rate_limit_exceeded" if reply.status == 429 else "fake_error"
        body = {"error": {"message": reply.message, "type": kind, "code": kind}}
    return JSONResponse(body, status_code=reply.status, headers=dict(reply.headers))
