import asyncio

from spectra_core import (
    CompositeRateLimiter,
    LocalRateLimiter,
    SessionEngine,
    SessionManager,
    tool,
)
from spectra_core.logging import configure_logging
from spectra_memory import InMemorySessionStore


@tool
def word_count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


async def main() -> None:
    configure_logging("warning")  # runs log at info level with their ids; keep this demo quiet
    engine = SessionEngine(
        SessionManager(InMemorySessionStore()),
        rate_limiter=CompositeRateLimiter(
            [
                {"limiter": LocalRateLimiter(60, 60_000), "key": "tenant"},
                {"limiter": LocalRateLimiter(15, 60_000), "key": "user"},
            ]
        ),
        max_concurrent_sessions=100,
    )
    engine.start()

    # Full lifecycle in one call (the built-in "echo" provider works offline)
    result = await engine.run(
        "user-123",
        "What is Rust?",
        None,
        {
            "model": {"id": "echo", "provider": "echo"},
            "system_prompt": "You are a helpful assistant.",
            "tenant_id": "acme",
            "tools": [word_count],
        },
    )
    print(result.final_message.text if result.final_message else result.error)

    # Streaming variant: yields events as they happen
    stream = await engine.run_streaming(
        "user-123", "Explain React", result.session_id, {"tenant_id": "acme"}
    )
    async for event in stream:
        if event.type == "message_update" and event.delta and event.delta["type"] == "text":
            print(event.delta["text"], end="", flush=True)
    print()

    await engine.stop(drain=True)  # graceful drain


asyncio.run(main())
