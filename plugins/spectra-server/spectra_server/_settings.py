"""The ``[server]`` section of spectra.toml: listening address, API keys, limits, CORS."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import attrs

from spectra_core.config import SpectraConfig, structure_options
from spectra_core.durations import Duration
from spectra_core.errors import ConfigError
from spectra_core.ids import validate_user_id

__all__ = ["ApiKey", "CorsSettings", "ServerSettings", "hash_key", "server_settings"]

#: Shortest API key accepted (a key is a secret: a short one can be guessed).
MIN_KEY_LENGTH = 16
_DIGEST = re.compile(r"[0-9a-f]{64}")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of an API key: what the server keeps and compares."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _key(value: object) -> str:
    """A plain key, hashed as soon as it is read (the plain text is never kept)."""
    if not isinstance(value, str):
        raise TypeError(f"expected the key as a string, got {type(value).__name__}")
    if not value:
        return ""
    if len(value) < MIN_KEY_LENGTH:
        raise ValueError(f"key: an API key must be at least {MIN_KEY_LENGTH} characters")
    return hash_key(value)


def _digest(_: object, __: object, value: str) -> None:
    if value and _DIGEST.fullmatch(value) is None:
        raise ValueError("key_sha256: expected 64 lowercase hex digits (sha256sum of the key)")


def _ident(what: str) -> Any:
    def check(_: object, __: object, value: str) -> None:
        validate_user_id(value, what)

    return check


@attrs.frozen
class ApiKey:
    """One ``[[server.api_keys]]`` entry: a key and the tenant and user it acts as.

    Give the key itself in ``key`` (use ``"${ENV_VAR}"``; it is hashed when read) or
    its SHA-256 hex digest in ``key_sha256``. ``name`` labels the key in logs.
    """

    tenant: str = attrs.field(validator=_ident("tenant"))
    user: str = attrs.field(validator=_ident("user"))
    key: str = attrs.field(default="", converter=_key, repr=False)
    key_sha256: str = attrs.field(default="", validator=_digest, repr=False)
    name: str = ""

    @property
    def digest(self) -> str:
        return self.key or self.key_sha256


@attrs.frozen
class CorsSettings:
    """``[server.cors]``: Starlette's CORSMiddleware settings."""

    allow_origins: list[str] = attrs.field(factory=list)
    allow_methods: list[str] = attrs.field(factory=lambda: ["GET", "POST", "DELETE"])
    allow_headers: list[str] = attrs.field(
        factory=lambda: ["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"]
    )
    allow_credentials: bool = False
    max_age: int = 600


def _positive(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class ServerSettings:
    """``[server]``: how ``spectra serve`` listens and what the API accepts."""

    host: str = "127.0.0.1"
    port: int = attrs.field(
        default=8000, validator=[attrs.validators.ge(0), attrs.validators.le(65535)]
    )
    api_keys: list[ApiKey] = attrs.field(factory=list)
    auth: dict[str, Any] | None = None
    max_body_bytes: int = attrs.field(default=1_048_576, validator=_positive)
    max_input_chars: int | None = attrs.field(default=None, validator=_positive)
    cors: CorsSettings | None = None
    drain_timeout: Duration = attrs.field(default=Duration(30.0))
    shutdown_timeout: Duration = attrs.field(default=Duration(10.0))
    heartbeat_interval: Duration = attrs.field(default=Duration(15.0), validator=_positive)
    insecure: bool = False

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for i, entry in enumerate(self.api_keys):
            if bool(entry.key) == bool(entry.key_sha256):
                raise ValueError(f"api_keys[{i}]: give exactly one of 'key' and 'key_sha256'")
            if entry.digest in seen:
                raise ValueError(f"api_keys[{i}]: the same key is listed twice")
            seen.add(entry.digest)


def server_settings(config: SpectraConfig | Mapping[str, Any] | None) -> ServerSettings:
    """The ``[server]`` section of a config (defaults without one); ConfigError naming
    the file and key path of every problem."""
    if config is None:
        return ServerSettings()
    if isinstance(config, SpectraConfig):
        source, table = config.source, config.plugin_sections.get("server", {})
    else:
        source, table = "<server settings>", config
    settings, errors = structure_options(dict(table), ServerSettings, "$.server")
    if errors or settings is None:
        raise ConfigError([f"{source}: {e}" for e in errors])
    return settings
