"""``/openapi.json``: an OpenAPI 3.1 document built from the operations of the routes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ._ops import Operation

__all__ = ["SCHEMAS", "openapi_document"]

_OBJECT = {"type": "object"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_STR = {"type": ["string", "null"]}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `error` is the spectra error class.",
        "required": ["type", "title", "status", "detail", "error"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "error": {"type": "string"},
            "retry_after": {"type": "integer", "minimum": 1},
        },
    },
    "RunRequest": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": {
                "description": "What the user says: text, or content blocks.",
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": _OBJECT, "minItems": 1},
                ],
            },
            "options": {
                "type": "object",
                "description": "Run options (model, system_prompt, max_turns, timeout_ms, "
                "temperature, max_tokens, metadata); the tenant comes from the credentials.",
                "properties": {
                    "model": {"oneOf": [{"type": "string"}, _OBJECT]},
                    "system_prompt": {"type": "string"},
                    "max_turns": {"type": "integer", "minimum": 1},
                    "timeout_ms": {"type": "number", "exclusiveMinimum": 0},
                    "temperature": {"type": "number", "minimum": 0},
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "metadata": _OBJECT,
                },
                "additionalProperties": False,
            },
        },
    },
    "RunResult": {
        "type": "object",
        "required": ["session_id", "run_id", "status", "text", "turns"],
        "properties": {
            "session_id": {"type": "string"},
            "run_id": {"type": "string"},
            "status": {"enum": ["completed", "aborted", "timed_out", "failed", "rate_limited"]},
            "final_message": {"type": ["object", "null"]},
            "error": _NULLABLE_STR,
            "turns": {"type": "integer"},
            "text": {"type": "string"},
        },
    },
    "AbortResult": {
        "type": "object",
        "required": ["run_id", "aborted"],
        "properties": {"run_id": {"type": "string"}, "aborted": {"type": "boolean"}},
    },
    "SessionInfo": {
        "type": "object",
        "required": ["id", "created_at", "updated_at", "version"],
        "properties": {
            "id": {"type": "string"},
            "user_id": _NULLABLE_STR,
            "tenant_id": _NULLABLE_STR,
            "created_at": _TIME,
            "updated_at": _TIME,
            "forked_from": {"type": ["object", "null"]},
            "version": {"type": "integer"},
        },
    },
    "SessionPage": {
        "type": "object",
        "required": ["sessions", "next_cursor"],
        "properties": {
            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/SessionInfo"}},
            "next_cursor": _NULLABLE_STR,
        },
    },
    "SessionHeader": {
        "type": "object",
        "required": ["id", "created_at", "updated_at", "config", "leaf_id", "version"],
        "properties": {
            "id": {"type": "string"},
            "user_id": _NULLABLE_STR,
            "tenant_id": _NULLABLE_STR,
            "created_at": _TIME,
            "updated_at": _TIME,
            "config": _OBJECT,
            "forked_from": {"type": ["object", "null"]},
            "leaf_id": _NULLABLE_STR,
            "version": {"type": "integer"},
        },
    },
    "Entry": {
        "type": "object",
        "required": ["type", "id", "parent_id", "timestamp"],
        "properties": {
            "type": {"type": "string"},
            "id": {"type": "string"},
            "parent_id": _NULLABLE_STR,
            "timestamp": _TIME,
        },
    },
    "SessionDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/SessionHeader"},
            {
                "type": "object",
                "required": ["active_branch"],
                "properties": {
                    "active_branch": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Entry"},
                    }
                },
            },
        ]
    },
    "SessionTree": {
        "type": "object",
        "required": ["session_id", "leaf_id", "roots", "nodes"],
        "properties": {
            "session_id": {"type": "string"},
            "leaf_id": _NULLABLE_STR,
            "roots": {"type": "array", "items": {"type": "string"}},
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["entry", "children", "label"],
                    "properties": {
                        "entry": {"$ref": "#/components/schemas/Entry"},
                        "children": {"type": "array", "items": {"type": "string"}},
                        "label": _NULLABLE_STR,
                    },
                },
            },
        },
    },
    "ForkRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"entry_id": _NULLABLE_STR},
    },
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": {"const": "3.1.0"}, "info": _OBJECT, "paths": _OBJECT},
    },
    "Liveness": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "ready"],
        "properties": {"status": {"type": "string"}, "ready": {"type": "boolean"}},
    },
}

_RATE_HEADERS = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer"},
    }
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (description, schema) in sorted(op.responses.items()):
        response: dict[str, Any] = {"description": description}
        if schema is not None:
            media = "application/problem+json" if schema == "Problem" else "application/json"
            response["content"] = {media: {"schema": _ref(schema)}}
            if status == 200 and op.event_stream:
                response["content"]["text/event-stream"] = {
                    "schema": {"type": "string", "description": "The run's SSE events"}
                }
        if status in (429, 503):
            response["headers"] = _RATE_HEADERS
        if status in (200, 201) and op.event_stream:
            response["headers"] = {
                "X-Session-Id": {"schema": {"type": "string"}},
                "X-Run-Id": {"schema": {"type": "string"}},
            }
        out[str(status)] = response
    if not op.public:
        out["default"] = {
            "description": "Any other error",
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    return out


def _operation(op: Operation) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    params += [{"in": "query", "required": False, **q} for q in op.query]
    params += [{"in": "header", "required": False, **h} for h in op.headers]
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op),
    }
    if params:
        doc["parameters"] = params
    if op.request is not None:
        doc["requestBody"] = {
            "required": op.request_required,
            "content": {"application/json": {"schema": _ref(op.request)}},
        }
    doc["security"] = [] if op.public else [{"bearer": []}, {"apiKey": []}]
    return doc


def openapi_document(operations: Iterable[Operation], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` (WebSocket routes are left out: OpenAPI
    cannot describe them; docs/server.md does)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        if op.websocket:
            continue
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
