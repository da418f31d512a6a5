"""Registration, configuration and API key resolution."""

from __future__ import annotations

import pytest

from spectra_core import BackendKind, ConfigError
from spectra_core.config import check_buildable, parse_config
from spectra_core.plugins import load_plugins
from spectra_openai import OpenAIOptions, OpenAIProvider


def test_registered_through_the_entry_point() -> None:
    registry = load_plugins(disabled=[])
    backend = registry.get(BackendKind.MODEL_PROVIDER, "openai")
    assert backend.distribution == "spectra-openai"
    assert backend.options is OpenAIOptions
    assert "OpenAI-compatible" in backend.description


async def test_model_section_of_a_config_file() -> None:
    registry = load_plugins(disabled=[])
    config = parse_config(
        {
            "model": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "api_key": "${OPENAI_API_KEY}",
                "base_url": "http://127.0.0.1:8000/v1",
                "timeout": "30s",
                "organization": "org-1",
            }
        },
        registry=registry,
        env={"OPENAI_API_KEY": "sk-from-env"},
    )
    assert config.model is not None
    assert config.model.options == OpenAIOptions(
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:8000/v1",
        api_key="sk-from-env",
        timeout=30.0,  # type: ignore[arg-type]
        organization="org-1",
    )
    provider = config.model.create(registry)
    try:
        assert isinstance(provider, OpenAIProvider)
        assert provider.model == "gpt-4o-mini"
        assert provider.base_url == "http://127.0.0.1:8000/v1"
    finally:
        await provider.aclose()
    assert await check_buildable(config, registry) == []


def test_unknown_option_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"model": {"provider": "openai", "modle": "x"}}, registry=load_plugins(disabled=[])
        )
    assert "did you mean 'model'" in str(info.value)


def test_api_key_is_not_in_repr() -> None:
    assert "sk-secret" not in repr(OpenAIOptions(api_key="sk-secret"))


def test_defaults() -> None:
    options = OpenAIOptions()
    assert (options.model, options.base_url, options.api_key, options.organization) == (
        None,
        None,
        None,
        None,
    )
    assert options.timeout == 60.0


async def test_no_key_and_no_base_url_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        OpenAIProvider.from_options(OpenAIOptions(model="gpt-4o-mini"))
    assert "OPENAI_API_KEY" in str(info.value)
    assert "base_url" in str(info.value)
    registry = load_plugins(disabled=[])
    config = parse_config({"model": {"provider": "openai"}}, registry=registry)
    (error,) = await check_buildable(config, registry)
    assert "no API key" in error


async def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    provider = OpenAIProvider()
    try:
        assert provider.base_url == "https://api.openai.com/v1"
        assert provider._client.api_key == "sk-env"
    finally:
        await provider.aclose()
