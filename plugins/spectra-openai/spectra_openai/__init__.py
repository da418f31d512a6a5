"""The ``openai`` model provider for spectra: OpenAI and any OpenAI-compatible server.

``spectra_openai.testing`` holds :class:`~spectra_openai.testing.FakeOpenAIServer`, a
scriptable OpenAI-compatible server for tests (needs the ``test`` extra).
"""

from ._errors import parse_retry_after
from ._options import OpenAIOptions
from ._provider import LOCAL_API_KEY, OpenAIProvider
from ._stream import STOP_REASONS

__all__ = ["LOCAL_API_KEY", "STOP_REASONS", "OpenAIOptions", "OpenAIProvider", "parse_retry_after"]
