"""What every route uses: the engine, who is calling, the body, and ownership checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.requests import HTTPConnection, Request

from spectra_core.engine import SessionEngine
from spectra_core.errors import InvalidArgumentError, SessionNotFoundError
from spectra_core.ids import validate_id
from spectra_core.models import Session

from ._auth import Authenticator, Principal, authenticate
from ._problems import BodyTooLargeError
from ._settings import ServerSettings

__all__ = ["Server"]

_decode = msgspec.json.Decoder().decode


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
