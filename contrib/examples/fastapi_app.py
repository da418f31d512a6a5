"""The spectra HTTP API mounted in a FastAPI application.

    pip install spectra-server spectra-memory fastapi
    uvicorn contrib.examples.fastapi_app:app

Then ``curl -X POST localhost:8000/agents/v1/runs -d '{"input": "hi"}'``. The app's own
lifespan starts the engine and drains it on shutdown (a mounted app's lifespan does not
run, so the engine is the outer application's to start and stop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from spectra_core import EchoProvider, SessionEngine, SessionManager
from spectra_memory import InMemorySessionStore, MemoryEventLog
from spectra_server import create_app

engine = SessionEngine(
    SessionManager(InMemorySessionStore()),
    provider=EchoProvider(),  # offline; use spectra-openai for a real model
    event_log=MemoryEventLog(),  # the streaming routes read the run event log
)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    engine.start()
    try:
        yield
    finally:
        await engine.stop(drain=True, drain_timeout=30)


app = FastAPI(lifespan=lifespan)
# No API keys: every caller is the anonymous principal. Pass ServerSettings(api_keys=[...])
# (or create_app(engine, config=load_config("spectra.toml"))) to require keys.
app.mount("/agents", create_app(engine))


@app.get("/")
async def index() -> dict[str, str]:
    return {"agents": "/agents", "docs": "/agents/openapi.json"}
