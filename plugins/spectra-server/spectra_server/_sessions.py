"""Session routes: list, read, tree, fork, delete — each scoped to the caller."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spectra_core.errors import InvalidArgumentError
from spectra_core.models import Session
from spectra_core.serde import converter, entry_to_dict, header_to_dict
from spectra_core.store import SessionFilter
from spectra_core.tree import get_branch, labels

from ._auth import Principal
from ._context import Server
from ._json import JsonResponse
from ._ops import operation

__all__: list[str] = []

MAX_PAGE = 1000
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("Malformed request", "Problem"),
    401: ("Missing or invalid credentials", "Problem"),
    404: ("No such session for this caller", "Problem"),
}


def session_header(session: Session) -> dict[str, Any]:
    header = header_to_dict(session)
    header.pop("incarnation", None)
    return header


def _time(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgumentError(
            f"query parameter {name!r}: expected an ISO 8601 time, got {value!r}"
        ) from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidArgumentError(
            f"query parameter 'limit': expected an integer from 1 to {MAX_PAGE}, got {raw!r}"
        )
    return int(raw)


@operation(
    "GET",
    "/v1/sessions",
    "List the caller's sessions, newest first, a page at a time",
    tag="sessions",
    query=(
        {"name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
        {"name": "cursor", "schema": {"type": "string"}},
        {"name": "updated_after", "schema": {"type": "string", "format": "date-time"}},
        {"name": "updated_before", "schema": {"type": "string", "format": "date-time"}},
    ),
    responses={200: ("A page of session headers", "SessionPage"), **_ERRORS},
)
async def list_sessions(server: Server, request: Request, principal: Principal) -> Response:
    filter = SessionFilter(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        updated_after=_time(request, "updated_after"),
        updated_before=_time(request, "updated_before"),
        limit=_limit(request),
        cursor=request.query_params.get("cursor") or None,
    )
    page = await server.engine.session_manager.list(filter)
    sessions = [
        converter.unstructure(info)
        for info in page
        if principal.owns(info.tenant_id, info.user_id)  # a None tenant filters nothing
    ]
    return JsonResponse({"sessions": sessions, "next_cursor": page.next_cursor})


@operation(
    "GET",
    "/v1/sessions/{session_id}",
    "A session's header and its active branch",
    tag="sessions",
    responses={200: ("The session", "SessionDetail"), **_ERRORS},
)
async def get_session(server: Server, request: Request, principal: Principal) -> Response:
    session = await server.owned_session(
        principal, request.path_params["session_id"], active_branch=True
    )
    body = session_header(session)
    body["active_branch"] = [entry_to_dict(e) for e in get_branch(session)]
    return JsonResponse(body)


@operation(
    "GET",
    "/v1/sessions/{session_id}/tree",
    "Every entry of a session with its children (the tree, flat)",
    tag="sessions",
    responses={200: ("The tree", "SessionTree"), **_ERRORS},
)
async def get_tree(server: Server, request: Request, principal: Principal) -> Response:
    session = await server.owned_session(principal, request.path_params["session_id"])
    children: dict[str | None, list[str]] = {}
    for entry in session.entries:
        children.setdefault(entry.parent_id, []).append(entry.id)
    names = labels(session)
    nodes = [
        {"entry": entry_to_dict(e), "children": children.get(e.id, []), "label": names.get(e.id)}
        for e in session.entries
    ]
    return JsonResponse(
        {
            "session_id": session.id,
            "leaf_id": session.leaf_id,
            "roots": children.get(None, []),
            "nodes": nodes,
        }
    )


@operation(
    "POST",
    "/v1/sessions/{session_id}/fork",
    "Copy the branch ending at an entry (default: the leaf) into a new session",
    tag="sessions",
    request="ForkRequest",
    request_required=False,
    responses={
        201: ("The new session's header", "SessionHeader"),
        **_ERRORS,
        413: ("Body too large", "Problem"),
    },
)
async def fork_session(server: Server, request: Request, principal: Principal) -> Response:
    source = await server.owned_session(principal, request.path_params["session_id"])
    body = await server.json_body(request, required=False)
    unknown = set(body) - {"entry_id"}
    if unknown:
        raise InvalidArgumentError(f"fork: unknown field(s) {sorted(unknown)} (valid: entry_id)")
    entry_id = body.get("entry_id")
    if entry_id is not None and not isinstance(entry_id, str):
        raise InvalidArgumentError("fork: 'entry_id' must be a string or null")
    fork = await server.engine.session_manager.fork(source.id, entry_id)
    return JsonResponse(
        session_header(fork), status_code=201, headers={"Location": f"../{fork.id}"}
    )


@operation(
    "DELETE",
    "/v1/sessions/{session_id}",
    "Delete a session and its entries",
    tag="sessions",
    responses={204: ("Deleted", None), **_ERRORS},
)
async def delete_session(server: Server, request: Request, principal: Principal) -> Response:
    session = await server.owned_session(principal, request.path_params["session_id"])
    await server.engine.session_manager.delete(session.id)
    return Response(status_code=204)
