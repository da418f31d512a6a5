"""What every route uses: the engine, who is calling, the body, and ownership checks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec
from starlette.requests import HTTPConnection, Request

from spectra_core.engine import SessionEngine
from spectra_core.errors import InvalidArgumentError, SessionNotFoundError
from spectra_core.ids import validate_id
from spectra_core.models import Session
from spectra_sse import SseBridge

from ._auth import Authenticator, Principal, authenticate
from ._problems import BodyTooLargeError
from ._settings import ServerSettings

__all__ = ["Owner", "Server"]

_decode = msgspec.json.Decoder().decode
#: A session's ``(tenant_id, user_id)``.
Owner = tuple[str | None, str | None]
#: How many run and session owners a server remembers (facts that never change).
OWNER_CACHE = 100_000
K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: OrderedDict[K, V], key: K, value: V) -> V:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > OWNER_CACHE:
        cache.popitem(last=False)
    return value


class Server:
    """The state of one app: its engine, settings and authenticators, and whether it is
    draining (set by ``spectra serve`` on SIGTERM, or by :meth:`start_draining`)."""

    def __init__(
        self,
        engine: SessionEngine,
        settings: ServerSettings,
        authenticators: Sequence[Authenticator],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.authenticators = list(authenticators)
        self.draining = False
        self.max_input_chars = settings.max_input_chars or engine.max_input_chars
        self.bridge = SseBridge(
            heartbeat_interval_ms=max(1, round(settings.heartbeat_interval * 1000)),
            log=engine.event_log,
        )
        self._run_owners: OrderedDict[str, tuple[str, Owner]] = OrderedDict()
        self._session_owners: OrderedDict[str, Owner] = OrderedDict()

    def remember_run(self, run_id: str, session_id: str, owner: Owner) -> tuple[str, Owner]:
        """Record that ``run_id`` runs on ``session_id`` of ``owner``."""
        _remember(self._session_owners, session_id, owner)
        return _remember(self._run_owners, run_id, (session_id, owner))

    def run_owner(self, run_id: str) -> tuple[str, Owner] | None:
        """``(session_id, owner)`` of a run this server started or checked, if known."""
        return self._run_owners.get(run_id)

    def session_owner(self, session_id: str) -> Owner | None:
        """The owner of a session a run of this server ran on, if known."""
        return self._session_owners.get(session_id)

    def start_draining(self) -> None:
        """From now on ``/readyz`` answers 503 (the engine's ``stop()`` refuses runs)."""
        self.draining = True

    async def principal(self, conn: HTTPConnection) -> Principal:
        return await authenticate(conn, self.authenticators)

    async def json_body(self, request: Request, *, required: bool = True) -> dict[str, Any]:
        """The request's JSON object, read up to ``max_body_bytes`` (413 beyond)."""
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise BodyTooLargeError(
                f"request body is {int(length):,} bytes; the limit is {limit:,}"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"request body is over the limit of {limit:,} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            if required:
                raise InvalidArgumentError("request body: expected a JSON object, got nothing")
            return {}
        try:
            body = _decode(raw)
        except msgspec.DecodeError as exc:
            raise InvalidArgumentError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidArgumentError(
                f"request body: expected a JSON object, got {type(body).__name__}"
            )
        return body

    async def owned_session(
        self, principal: Principal, session_id: str, *, active_branch: bool = False
    ) -> Session:
        """The session if it belongs to ``principal``; SessionNotFoundError otherwise
        (another principal's session is indistinguishable from a missing one)."""
        validate_id(session_id)
        manager = self.engine.session_manager
        session = await manager.load(session_id, active_branch=active_branch)
        if not principal.owns(session.tenant_id, session.user_id):
            raise SessionNotFoundError(session_id)
        return session
