"""A real uvicorn server on 127.0.0.1, in the test's own event loop.

::

    async with serve_asgi(app) as base_url:  # "http://127.0.0.1:<free port>"
        ...

Same loop as the test, so the app and the test share in-process objects (an event log)
without crossing threads. Requires uvicorn (a test dependency of the transports).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["serve_asgi"]


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1 until the block ends."""
    import uvicorn

    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "log_level": "warning",
        "lifespan": "off",
        "timeout_graceful_shutdown": 2,
        **config,
    }
    server = uvicorn.Server(uvicorn.Config(app, **options))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # keep the test runner's signal handlers
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)  # uvicorn binds on its own schedule
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
