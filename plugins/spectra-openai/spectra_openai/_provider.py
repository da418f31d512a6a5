"""OpenAIProvider: any OpenAI-compatible chat completions endpoint, streamed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import openai

from spectra_core import Clock, ConfigError, SystemClock
from spectra_core.agent import ModelRequest, ProviderDone, ProviderError, ProviderEvent

from ._convert import build_params
from ._errors import PROVIDER, from_sdk_error, malformed
from ._options import OpenAIOptions
from ._stream import ChunkError, StreamState

__all__ = ["LOCAL_API_KEY", "OpenAIProvider"]

#: The key sent to a server at ``base_url`` when none is configured (local servers
#: ignore it, but the SDK insists on one).
LOCAL_API_KEY = "not-needed"
_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    if api_key:
        return api_key
    env = os.environ.get("OPENAI_API_KEY")
    if env:
        return env
    if base_url or os.environ.get("OPENAI_BASE_URL"):
        return LOCAL_API_KEY
    raise ConfigError(
        'openai model provider: no API key; set api_key (e.g. api_key = "${OPENAI_API_KEY}" '
        "in [model]) or the OPENAI_API_KEY environment variable, or set base_url to a "
        "local OpenAI-compatible server that needs none"
    )


class OpenAIProvider:
    """A :class:`~spectra_core.agent.ModelProvider` for OpenAI and OpenAI-compatible
    servers (vLLM, Ollama, llama.cpp server, LM Studio) through the official SDK.

    The SDK's own retries are off (``max_retries=0``): the engine retries retryable
    :class:`~spectra_core.agent.ProviderError` s. Pass ``client`` to use a prepared
    ``openai.AsyncOpenAI`` (it is then not closed by :meth:`aclose`).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 60.0,
        organization: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        client: openai.AsyncOpenAI | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.model = model
        self._clock: Clock = clock or SystemClock()
        if client is not None:
            self._client = client
            self._owns_client = False
        else:
            self._client = openai.AsyncOpenAI(
                api_key=_resolve_api_key(api_key, base_url),
                base_url=base_url,
                organization=organization,
                timeout=timeout,
                max_retries=0,
                default_headers=default_headers,
            )
            self._owns_client = True
        self.base_url = str(self._client.base_url).rstrip("/") or _DEFAULT_BASE_URL

    @classmethod
    def from_options(cls, options: OpenAIOptions) -> OpenAIProvider:
        """Build from the ``[model]`` section of a config file."""
        return cls(
            base_url=options.base_url,
            api_key=options.api_key,
            model=options.model,
            timeout=float(options.timeout),
            organization=options.organization,
        )

    def model_name(self, request: ModelRequest) -> str:
        """The model asked for: the configured default model if set, else ``model.id``."""
        return self.model or request.model.id

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """Stream one completion: text, thinking and tool-call deltas, then ``ProviderDone``.

        Raises :class:`~spectra_core.agent.ProviderError`; deltas may already have been
        yielded when a stream breaks off.
        """
        model = self.model_name(request)
        if not model:
            raise ProviderError(
                "no model name: set model in the [model] section or a model id on the request",
                provider=PROVIDER,
            )
        params = build_params(request, model)
        state = StreamState(model=model)
        try:
            stream = await self._client.chat.completions.create(**params)
        except Exception as exc:
            raise self._error(exc, model) from exc
        try:
            async with stream:
                while True:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    except ValueError as exc:  # a data line that is not JSON
                        raise malformed(
                            f"chunk {state.chunks + 1} is not valid JSON ({exc})",
                            model=model,
                            base_url=self.base_url,
                        ) from exc
                    except Exception as exc:
                        raise self._error(exc, model, state.chunks) from exc
                    for event in state.feed(_as_dict(chunk)):
                        yield event
            if state.finish_reason is None:
                raise ProviderError(
                    f"model {model!r} at {self.base_url}: the stream ended after "
                    f"{state.chunks} chunk(s) without a finish_reason (connection cut or "
                    "server crashed); the answer is incomplete",
                    retryable=True,
                    provider=PROVIDER,
                )
            message = state.message()
        except ChunkError as exc:
            raise malformed(str(exc), model=model, base_url=self.base_url) from None
        yield ProviderDone(message)

    def _error(self, exc: BaseException, model: str, chunks: int = 0) -> ProviderError:
        return from_sdk_error(
            exc, model=model, base_url=self.base_url, now=self._clock.time(), chunks=chunks
        )

    async def aclose(self) -> None:
        """Close the HTTP client (unless it was passed in)."""
        if self._owns_client:
            await self._client.close()


def _as_dict(chunk: Any) -> Any:
    """The chunk as the server sent it (the SDK's models are built without validation)."""
    to_dict = getattr(chunk, "to_dict", None)
    if to_dict is None:
        return chunk
    return to_dict(warnings=False)
