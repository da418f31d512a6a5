"""Build the model objects of 1,000 stored message entries N times: run under callgrind.

The instructions one build costs are the difference between a run with N = 11 and one
with N = 1, divided by 10 (callgrind counts instructions, which on this noisy VM are
repeatable where times are not)::

    valgrind --tool=callgrind .venv/bin/python -m bench.build_instructions 1
    valgrind --tool=callgrind .venv/bin/python -m bench.build_instructions 11

The entries are those of ``bench.stores``' conversation, parsed once by msgspec before
the builds; the collector is off during the builds, as ``serde.bulk_decoding`` has it
during a load.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

from bench.stores import Conversation, SpectraBackend
from spectra_core import _codec
from spectra_core.serde import entry_to_json

__all__ = ["main"]


async def _entries() -> list[Any]:
    backend = SpectraBackend(Conversation.of(1000), None, "memory")  # type: ignore[arg-type]
    await backend.open()
    await backend.begin()
    for i in range(1000):
        await backend.append(i)
    return list(backend.sessions[0].entries)


def main(builds: int) -> None:
    blob = b"\n".join(entry_to_json(e).encode() for e in asyncio.run(_entries()))
    wires = _codec._decoder.decode_lines(blob)
    build = _codec._builders
    [build[type(w)](w) for w in wires]  # warm-up
    gc.disable()
    try:
        kept = [[build[type(w)](w) for w in wires] for _ in range(builds)]
    finally:
        gc.enable()
    print(f"built {len(kept)} x {len(wires)} entries, generated builders")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
