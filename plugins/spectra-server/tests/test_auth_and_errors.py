"""Credentials, [server] settings, size limits and problem+json errors."""

from __future__ import annotations

import hashlib

import attrs
import httpx
import pytest
from server_helpers import KEYS, make_engine, make_settings

from spectra_core import Session
from spectra_core.config import build_engine as build_engine_from_config
from spectra_core.config import parse_config
from spectra_core.errors import ConfigError, StoreError
from spectra_core.plugins import load_plugins
from spectra_core.testing.asgi_server import serve_asgi
from spectra_memory import InMemorySessionStore
from spectra_server import create_app, server_settings

Clients = dict[str, httpx.AsyncClient]
PROBLEM = "application/problem+json"


async def test_no_credentials_is_401_problem_with_www_authenticate(clients: Clients) -> None:
    for response in [
        await clients["anon"].get("/v1/sessions"),
        await clients["anon"].post("/v1/runs", json={"input": "hi"}),
        await clients["anon"].get(
            "/v1/sessions/abc", headers={"Authorization": "Bearer wrong-key-0123456789"}
        ),
        await clients["anon"].get("/v1/sessions", headers={"X-API-Key": "wrong-key-0123456789"}),
        await clients["anon"].get("/v1/sessions", headers={"Authorization": "Basic abc"}),
    ]:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "AuthenticationError"


async def test_bearer_and_x_api_key_are_the_same_principal(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        made = await client.post(
            "/v1/runs", json={"input": "hi"}, headers={"X-API-Key": KEYS["alice"]}
        )
        assert made.status_code == 200
        sid = made.json()["session_id"]
        again = await client.get(
            f"/v1/sessions/{sid}", headers={"Authorization": f"Bearer {KEYS['alice']}"}
        )
        assert again.status_code == 200


async def test_probes_and_openapi_need_no_credentials(clients: Clients) -> None:
    anon = clients["anon"]
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    ready = await anon.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert (await anon.get("/openapi.json")).json()["openapi"] == "3.1.0"


def test_keys_come_from_the_environment_and_are_kept_hashed() -> None:
    key = "from-the-env-0123456789"
    config = parse_config(
        {
            "store": {"backend": "memory"},
            "server": {
                "api_keys": [
                    {"key": "${ALICE_KEY}", "tenant": "acme", "user": "alice"},
                    {
                        "key_sha256": hashlib.sha256(b"b" * 20).hexdigest(),
                        "tenant": "t",
                        "user": "u",
                    },
                ]
            },
        },
        "spectra.toml",
        env={"ALICE_KEY": key},
    )
    settings = server_settings(config)
    assert settings.api_keys[0].digest == hashlib.sha256(key.encode()).hexdigest()
    kept = [getattr(settings.api_keys[0], a.name) for a in attrs.fields(type(settings.api_keys[0]))]
    assert key not in kept and key not in repr(settings)


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"api_keys": [{"key": "short", "tenant": "t", "user": "u"}]}, "$.server.api_keys[0].key"),
        ({"api_keys": [{"tenant": "t", "user": "u"}]}, "exactly one of 'key' and 'key_sha256'"),
        ({"api_keys": [{"key_sha256": "xyz", "tenant": "t", "user": "u"}]}, "key_sha256"),
        ({"max_body_byte": 1}, "did you mean 'max_body_bytes'"),
        ({"port": 70000}, "$.server.port"),
    ],
)
def test_bad_server_settings_name_the_key(server: dict, expected: str) -> None:
    config = parse_config({"store": {"backend": "memory"}, "server": server}, "spectra.toml")
    with pytest.raises(ConfigError) as info:
        server_settings(config)
    assert "spectra.toml" in str(info.value) and expected in str(info.value)


def test_an_unset_key_variable_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"\$\.server\.api_keys\[0\]\.key: environment variable NOPE_KEY"
    ):
        parse_config(
            {"server": {"api_keys": [{"key": "${NOPE_KEY}", "tenant": "t", "user": "u"}]}},
            "spectra.toml",
            env={},
        )


async def test_body_and_input_limits_are_413() -> None:
    engine = make_engine()
    engine.start()
    settings = make_settings(max_body_bytes=2000, max_input_chars=100)
    try:
        async with serve_asgi(create_app(engine, settings)) as url:
            headers = {"X-API-Key": KEYS["alice"]}
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                big = await client.post("/v1/runs", json={"input": "x" * 5000})
                assert big.status_code == 413 and big.headers["content-type"] == PROBLEM

                async def chunks():  # no Content-Length: counted as it streams
                    for _ in range(10):
                        yield b" " * 500

                streamed = await client.post("/v1/runs", content=chunks())
                assert streamed.status_code == 413
                long_input = await client.post("/v1/runs", json={"input": "y" * 101})
                assert long_input.status_code == 413
                assert "100" in long_input.json()["detail"]
                assert (await client.post("/v1/runs", json={"input": "y" * 100})).status_code == 200
    finally:
        await engine.stop(drain=False)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"input": "hi", "extra": 1}', "unknown field"),
        (b'{"options": {}}', "missing field 'input'"),
        (b'{"input": 3}', "'input'"),
        (b'{"input": ""}', "input is empty"),
        (b'{"input": "hi", "options": {"tenant_id": "other"}}', "tenant_id"),
        (b'{"input": "hi", "options": {"max_turn": 1}}', "did you mean 'max_turns'"),
        (b'{"input": "hi", "options": {"tools": []}}', "tools"),
    ],
)
async def test_bad_requests_are_400_problems(clients: Clients, body: bytes, needle: str) -> None:
    response = await clients["alice"].post(
        "/v1/runs", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 400 and problem["type"].startswith("urn:spectra:error:")
    assert needle in problem["detail"]


async def test_unknown_routes_and_methods_are_problems(clients: Clients) -> None:
    missing = await clients["alice"].get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    wrong = await clients["alice"].put("/v1/sessions")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM


async def test_rate_limited_is_429_with_retry_after() -> None:
    registry = load_plugins()
    config = parse_config(
        {
            "store": {"backend": "memory"},
            "event_log": {"backend": "memory"},
            "limiter": [
                {"backend": "memory", "key": "user", "requests_per_window": 1, "window": "1h"}
            ],
        },
        "spectra.toml",
        registry,
    )
    engine = build_engine_from_config(config, registry)
    engine.start()
    try:
        async with serve_asgi(create_app(engine, make_settings())) as url:
            headers = {"X-API-Key": KEYS["alice"]}
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                assert (await client.post("/v1/runs", json={"input": "a"})).status_code == 200
                limited = await client.post("/v1/runs", json={"input": "b"})
                assert limited.status_code == 429, limited.text
                assert limited.headers["content-type"] == PROBLEM
                retry = int(limited.headers["retry-after"])
                assert 1 <= retry <= 3600
                assert limited.json()["retry_after"] == retry
                assert limited.json()["error"] == "RateLimitedError"
    finally:
        await engine.stop(drain=False)


async def test_a_stopped_engine_is_503_with_retry_after(engine, clients: Clients) -> None:
    await engine.stop()
    response = await clients["alice"].post("/v1/runs", json={"input": "late"})
    assert response.status_code == 503
    assert response.json()["error"] == "EngineDrainingError"
    assert int(response.headers["retry-after"]) >= 1
    ready = await clients["anon"].get("/readyz")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert "retry-after" in ready.headers


class DownStore(InMemorySessionStore):
    """A store whose server went away: every save fails as a networked store's does."""

    async def save(self, session: Session) -> None:
        raise StoreError("saving failed against redis redis://:***@10.0.0.7:6379/0: refused")


async def test_a_store_that_is_down_is_503_without_its_internals() -> None:
    engine = make_engine()
    engine.session_manager.store = DownStore()
    engine.start()
    try:
        async with serve_asgi(create_app(engine, make_settings())) as url:
            headers = {"Authorization": f"Bearer {KEYS['alice']}"}
            async with httpx.AsyncClient(base_url=url, headers=headers) as client:
                response = await client.post("/v1/runs", json={"input": "hi"})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["error"] == "StoreError"
        assert "10.0.0.7" not in response.text
        assert int(response.headers["retry-after"]) >= 1
        assert engine.active_session_count == 0  # nothing held
    finally:
        await engine.stop(drain=False)
