"""The model providers of an engine: given by name, a default, and those built on demand."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import attrs
import structlog

from ..agent.builtin import EchoProvider
from ..agent.provider import ModelProvider
from ..errors import InvalidArgumentError, PluginError
from ..models import ModelRef

__all__ = ["DEFAULT_MODEL", "ProviderResolver", "Providers", "deprecated_registry"]

log = structlog.get_logger("spectra.engine")

DEFAULT_MODEL = ModelRef("echo", provider="echo")
#: Builds the model provider of a name no provider was given for (config assembly
#: passes one that asks the plugin registry); raises PluginError for an unknown name.
ProviderResolver = Callable[[str], ModelProvider]


@attrs.define(eq=False)
class Providers:
    """Which provider serves a model, and which providers :meth:`aclose` closes: those
    built here, and all of them when ``close_all``."""

    default: ModelProvider | None
    by_name: dict[str, ModelProvider]
    resolve: ProviderResolver | None
    close_all: bool = False
    _built: list[ModelProvider] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        if self.default is None:
            self.default = EchoProvider()
            self._built.append(self.default)

    def for_model(self, model: ModelRef) -> ModelProvider:
        name = model.provider
        assert self.default is not None
        if name is None:
            return self.default
        if name in self.by_name:
            return self.by_name[name]
        if self.resolve is not None:
            provider = self.by_name[name] = self.resolve(name)
            self._built.append(provider)
            return provider
        if name == DEFAULT_MODEL.provider:
            return self.default
        raise PluginError(
            f"no model provider {name!r}: pass providers={{{name!r}: ...}} or resolve_provider"
        )

    def owned(self) -> list[ModelProvider]:
        given = [self.default, *self.by_name.values()] if self.close_all else []
        return [p for p in [*given, *self._built] if p is not None]


def deprecated_registry(registry: Any, resolve: ProviderResolver | None) -> ProviderResolver:
    """The resolver of the deprecated ``SessionEngine(registry=...)``."""
    warnings.warn(
        "SessionEngine(registry=...) is deprecated; pass resolve_provider= (what "
        "spectra_core.config.provider_resolver(registry) returns)",
        DeprecationWarning,
        stacklevel=3,
    )
    return resolve or (lambda name: registry.create("model_provider", name))


def check_settings(**settings: Any) -> None:
    """InvalidArgumentError naming the first engine setting out of range."""
    for name in ("max_concurrent_sessions", "max_input_chars", "max_queued_events"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    if settings["session_timeout_ms"] <= 0:
        raise InvalidArgumentError(
            f"session_timeout_ms must be positive, got {settings['session_timeout_ms']}"
        )
    if settings["busy"] not in ("reject", "wait"):
        raise InvalidArgumentError(f"busy must be 'reject' or 'wait', got {settings['busy']!r}")
