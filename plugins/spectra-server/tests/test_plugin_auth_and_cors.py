"""A plugin's authenticator through spectra_register_authenticators, and CORS."""

from __future__ import annotations

import types

import attrs
import httpx
import pytest
from server_helpers import KEYS, make_engine, make_settings
from starlette.requests import HTTPConnection

from spectra_core import hookimpl
from spectra_core.config import parse_config
from spectra_core.errors import ConfigError
from spectra_core.plugins import load_plugins, module_source
from spectra_core.testing.asgi_server import serve_asgi
from spectra_server import AuthenticationError, CorsSettings, Principal, create_app


@attrs.frozen
class HeaderAuthOptions:
    header: str = "x-user"
    tenant: str = "acme"


class HeaderAuth:
    """Trusts a header naming the user (what a JWT check would do with a token)."""

    def __init__(self, options: HeaderAuthOptions) -> None:
        self.options = options

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        user = conn.headers.get(self.options.header)
        if user is None:
            return None
        if user == "banned":
            raise AuthenticationError("user 'banned' may not call")
        return Principal(user_id=user, tenant_id=self.options.tenant)


plugin = types.ModuleType("headerauth")


@hookimpl
def spectra_register_authenticators(register):  # type: ignore[no-untyped-def]
    register("header", HeaderAuth, HeaderAuthOptions)


plugin.spectra_register_authenticators = spectra_register_authenticators  # type: ignore[attr-defined]


def _config(server: dict) -> tuple:
    registry = load_plugins(extra=[module_source(plugin, "spectra-headerauth")])
    config = parse_config(
        {"store": {"backend": "memory"}, "event_log": {"backend": "memory"}, "server": server},
        "spectra.toml",
        registry,
    )
    return config, registry


async def test_a_plugin_authenticator_is_asked_after_the_keys() -> None:
    config, registry = _config(
        {
            "api_keys": [{"key": KEYS["alice"], "tenant": "acme", "user": "alice"}],
            "auth": {"backend": "header", "header": "x-who"},
        }
    )
    engine = make_engine()
    engine.start()
    try:
        async with (
            serve_asgi(create_app(engine, config=config, registry=registry)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            by_header = await client.post(
                "/v1/runs", json={"input": "hi"}, headers={"x-who": "carol"}
            )
            assert by_header.status_code == 200
            sid = by_header.json()["session_id"]
            mine = await client.get(f"/v1/sessions/{sid}", headers={"x-who": "carol"})
            assert mine.json()["user_id"] == "carol" and mine.json()["tenant_id"] == "acme"
            key = {"X-API-Key": KEYS["alice"]}
            assert (await client.get(f"/v1/sessions/{sid}", headers=key)).status_code == 404
            banned = await client.get("/v1/sessions", headers={"x-who": "banned"})
            assert banned.status_code == 401 and "banned" in banned.json()["detail"]
            assert (await client.get("/v1/sessions")).status_code == 401
    finally:
        await engine.stop(drain=False)


@pytest.mark.parametrize(
    ("auth", "needle"),
    [
        ({"backend": "jwt"}, "$.server.auth.backend: unknown authenticator backend 'jwt'"),
        ({"backend": "header", "headr": "x"}, "did you mean 'header'"),
        ({"header": "x"}, "missing key 'backend'"),
    ],
)
def test_a_bad_auth_section_names_the_key(auth: dict, needle: str) -> None:
    from spectra_server import server_settings
    from spectra_server._auth import build_authenticators

    config, registry = _config({"auth": auth})
    with pytest.raises(ConfigError) as info:
        build_authenticators(server_settings(config), config, registry)
    assert needle in str(info.value)


async def test_cors_answers_preflights_for_allowed_origins() -> None:
    engine = make_engine()
    engine.start()
    settings = make_settings(cors=CorsSettings(allow_origins=["https://app.example"]))
    try:
        async with (
            serve_asgi(create_app(engine, settings)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            preflight = {
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            }
            ok = await client.options("/v1/runs", headers=preflight)
            assert ok.status_code == 200
            assert ok.headers["access-control-allow-origin"] == "https://app.example"
            other = await client.options(
                "/v1/runs", headers=preflight | {"Origin": "https://evil.example"}
            )
            assert other.status_code == 400
            run = await client.post(
                "/v1/runs",
                json={"input": "hi"},
                headers={"Origin": "https://app.example", "X-API-Key": KEYS["alice"]},
            )
            assert "X-Run-Id" in run.headers["access-control-expose-headers"]
    finally:
        await engine.stop(drain=False)
