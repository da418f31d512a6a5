"""The spectra HTTP API (``create_app``) and the ``spectra serve`` command."""

from ._app import create_app, server_of
from ._auth import (
    ANONYMOUS,
    ApiKeyAuthenticator,
    AuthenticationError,
    Authenticator,
    Principal,
    presented_key,
)
from ._context import Server
from ._settings import ApiKey, CorsSettings, ServerSettings, hash_key, server_settings

__all__ = [
    "ANONYMOUS",
    "ApiKey",
    "ApiKeyAuthenticator",
    "AuthenticationError",
    "Authenticator",
    "CorsSettings",
    "Principal",
    "Server",
    "ServerSettings",
    "create_app",
    "hash_key",
    "presented_key",
    "server_of",
    "server_settings",
]
