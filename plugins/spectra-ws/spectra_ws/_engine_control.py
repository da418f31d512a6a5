"""EngineControl: the socket's ``start`` and ``abort`` ops, run by a SessionEngine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from spectra_core.engine import SessionEngine
from spectra_core.errors import InvalidArgumentError

__all__ = ["EngineControl"]


@attrs.frozen
class EngineControl:
    """Starts runs with ``engine.start_run`` and aborts them with ``abort_session``.

    ``user_id`` (and ``tenant_id``) set who every run of this socket runs as — what a
    server that authenticated the socket passes; a ``user_id`` in a message is then
    refused if it differs. Without one, each ``start`` message names its ``user_id``
    (trusted clients only). The engine needs an event log (the socket streams from it).
    """

    engine: SessionEngine
    user_id: str | None = None
    tenant_id: str | None = None

    async def start_run(self, request: Mapping[str, Any]) -> str:
        user_id = self._user(request.get("user_id"))
        options = request.get("options") or {}
        if not isinstance(options, Mapping):
            raise InvalidArgumentError("start: 'options' must be an object")
        if self.tenant_id is not None:
            options = {**options, "tenant_id": self.tenant_id}
        text = request.get("input")
        if not isinstance(text, str):
            raise InvalidArgumentError("start needs a string 'input'")
        handle = await self.engine.start_run(user_id, text, request.get("session_id"), options)
        return handle.run_id

    def abort_session(self, session_id: str) -> bool:
        return self.engine.abort_session(session_id, user_id=self.user_id)

    def _user(self, asked: object) -> str:
        if self.user_id is None:
            if not isinstance(asked, str):
                raise InvalidArgumentError("start needs a string 'user_id'")
            return asked
        if asked is not None and asked != self.user_id:
            raise InvalidArgumentError("start: 'user_id' is set by the server for this socket")
        return self.user_id
