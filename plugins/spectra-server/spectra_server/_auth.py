"""Who is calling: principals, API keys, and authenticators contributed by plugins."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
from starlette.requests import HTTPConnection

from spectra_core.config import SpectraConfig, structure_options
from spectra_core.errors import ConfigError, SpectraError
from spectra_core.plugins import BackendKind, PluginRegistry

from ._settings import ApiKey, ServerSettings, hash_key

__all__ = [
    "ANONYMOUS",
    "ApiKeyAuthenticator",
    "AuthenticationError",
    "Authenticator",
    "Principal",
    "authenticate",
    "build_authenticators",
]


@attrs.frozen
class Principal:
    """The tenant and user a request acts as: every session and run is theirs alone."""

    user_id: str
    tenant_id: str | None = None
    key_name: str = ""

    def owns(self, tenant_id: str | None, user_id: str | None) -> bool:
        """Whether a session of ``tenant_id`` and ``user_id`` belongs to this principal."""
        return tenant_id == self.tenant_id and user_id == self.user_id


#: Who calls a server without any authenticator (loopback, or ``--insecure``).
ANONYMOUS = Principal(user_id="anonymous", tenant_id=None)


class AuthenticationError(SpectraError):
    """The request's credentials are missing or wrong (answered 401)."""


@runtime_checkable
class Authenticator(Protocol):
    """Turns a request's credentials into a :class:`Principal`.

    Return ``None`` when the request carries no credentials this authenticator reads
    (the next one is asked); raise :class:`AuthenticationError` when they are wrong.
    """

    async def authenticate(self, conn: HTTPConnection) -> Principal | None: ...


def presented_key(conn: HTTPConnection) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, if any."""
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = conn.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class ApiKeyAuthenticator:
    """The ``[[server.api_keys]]`` entries: keys are kept and compared as SHA-256 digests."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {
            k.digest: Principal(user_id=k.user, tenant_id=k.tenant, key_name=k.name) for k in keys
        }

    def __len__(self) -> int:
        return len(self._by_digest)

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        key = presented_key(conn)
        if key is None:
            return None
        digest = hash_key(key)
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise AuthenticationError("the API key is not valid")


async def authenticate(conn: HTTPConnection, authenticators: Sequence[Authenticator]) -> Principal:
    """The principal of a request: the first authenticator that recognises it. Without
    authenticators everyone is :data:`ANONYMOUS`; with some, no credentials is an error."""
    if not authenticators:
        return ANONYMOUS
    for auth in authenticators:
        principal = await auth.authenticate(conn)
        if principal is not None:
            return principal
    raise AuthenticationError(
        "authentication required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    )


def build_authenticators(
    settings: ServerSettings, config: SpectraConfig | None, registry: PluginRegistry | None
) -> list[Authenticator]:
    """The API keys of ``settings`` (if any), then the ``[server.auth]`` backend (if any),
    built by the plugin that registered it through ``spectra_register_authenticators``."""
    out: list[Authenticator] = []
    if settings.api_keys:
        out.append(ApiKeyAuthenticator(settings.api_keys))
    if settings.auth is not None:
        out.append(_plugin_authenticator(settings.auth, config, registry))
    return out


def _plugin_authenticator(
    table: dict[str, Any], config: SpectraConfig | None, registry: PluginRegistry | None
) -> Authenticator:
    source = config.source if config is not None else "<server settings>"
    path = "$.server.auth"
    name = table.get("backend")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: {path}: missing key 'backend' naming the authenticator")
    if registry is None:
        from spectra_core.plugins import load_plugins

        registry = load_plugins()
    try:
        backend = registry.get(BackendKind.AUTHENTICATOR, name)
    except SpectraError as exc:
        raise ConfigError(f"{source}: {path}.backend: {exc}") from None
    rest = {k: v for k, v in table.items() if k != "backend"}
    options, errors = structure_options(rest, backend.options, path)
    if errors or options is None:
        raise ConfigError([f"{source}: {e}" for e in errors])
    built = backend.create(options)
    if not isinstance(built, Authenticator):
        raise ConfigError(
            f"{source}: {path}: authenticator {name!r} built a {type(built).__name__}, "
            "which has no 'async authenticate(conn)'"
        )
    return built
