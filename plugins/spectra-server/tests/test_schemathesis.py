"""schemathesis against /openapi.json of a live server: no 5xx, every response (status,
content type, headers, body) as the document says, for valid and invalid requests."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from server_helpers import KEYS, make_engine, make_settings

from spectra_core.testing.asgi_server import serve_asgi
from spectra_server import create_app
from spectra_server._ops import OPERATIONS

#: What every response must satisfy. Left out: positive_data_acceptance (a request the
#: document allows may still be refused: text with lone surrogates, blank input, a
#: model id a provider rejects: the engine's checks are richer than JSON Schema) and
#: the stateful checks (use_after_free needs links between operations).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.missing_required_header,
    checks.ignored_auth,
    checks.unsupported_method,
]


#: Operations without parameters or body: no request is invalid by the document.
NOTHING_TO_BREAK = {
    f"{op.method} {op.path}"
    for op in OPERATIONS
    if not op.websocket and op.request is None and not op.query and "{" not in op.path
}


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """A uvicorn server on its own thread and loop (schemathesis calls it synchronously)."""
    ready: list[str] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        engine = make_engine()
        engine.start()
        stop.append(asyncio.Event())
        async with serve_asgi(create_app(engine, make_settings())) as url:
            ready.append(url)
            started.set()
            await stop[0].wait()
        await engine.stop(drain=False)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(60), "the server did not start"
    yield ready[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(30)
    loop.close()


@pytest.fixture(scope="module")
def api_schema(live_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


def test_every_operation_conforms(api_schema: Any) -> None:
    """Each operation, with generated valid and invalid requests (schemathesis's own
    pytest integration does not run on this pytest, so hypothesis drives it here)."""
    headers = {"Authorization": f"Bearer {KEYS['alice']}"}
    checked = []
    for result, mode in itertools.product(
        list(api_schema.get_all_operations()), list(GenerationMode)
    ):
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.label in NOTHING_TO_BREAK:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        checked.append(operation.label)
    routes = {f"{op.method} {op.path}" for op in OPERATIONS if not op.websocket}
    assert routes > NOTHING_TO_BREAK
    # schemathesis leaves out the document it was loaded from (test_auth_and_errors reads it)
    assert set(checked) == routes - {"GET /openapi.json"}
