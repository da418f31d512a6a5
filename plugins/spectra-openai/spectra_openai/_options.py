"""OpenAIOptions: the ``[model]`` section of a config file for ``provider = "openai"``."""

from __future__ import annotations

import attrs

from spectra_core.durations import Duration

__all__ = ["OpenAIOptions"]


@attrs.frozen
class OpenAIOptions:
    """Options of the ``openai`` model provider.

    ``model`` is the default model name (it wins over the request's ``model.id`` when
    set); ``base_url`` points at any OpenAI-compatible server (``.../v1``); ``api_key``
    falls back to ``$OPENAI_API_KEY`` and may be left out for a local server;
    ``timeout`` bounds connecting and each read of the stream.
    """

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    timeout: Duration = attrs.field(default=Duration(60.0))
    organization: str | None = None
