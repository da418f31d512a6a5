"""Session store benchmark: spectra's stores side by side with LangGraph and the Agents SDK.

One conversation of N messages (alternating user / assistant, 200-800 characters of
deterministic text) is written message by message -- append one message, persist it --
then loaded back from a freshly opened store. For every store and size it reports the
time per append (mean, mean of the last 10%, message 10 vs message N), the load time and
the bytes left on disk, then the ratios against each peer and the targets of issue 4.

Run: ``uv run python -m bench.stores [--sizes 10,1000,10000] [--quick]``
(peers need ``uv sync --all-packages --group bench``). Timings are informational: the
script always exits 0. See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import gc
import importlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Conversation", "Result", "main", "run"]

SPECTRA_STORES = ("memory", "fs", "sqlite")
PEER_STORES = ("langgraph", "agents")
ALL_STORES = SPECTRA_STORES + PEER_STORES

LABELS = {
    "memory": "spectra memory",
    "fs": "spectra fs",
    "sqlite": "spectra sqlite",
    "langgraph": "LangGraph AsyncSqliteSaver",
    "agents": "Agents SDK SQLiteSession",
}

# Where each store lives, for the "not installed" notes.
PACKAGES = {
    "memory": ("spectra_memory", "spectra-memory (uv sync --all-packages)"),
    "fs": ("spectra_fs", "spectra-fs (uv sync --all-packages)"),
    "sqlite": ("spectra_sqlite", "spectra-sqlite (uv sync --all-packages)"),
    "langgraph": (
        "langgraph.checkpoint.sqlite.aio",
        "langgraph-checkpoint-sqlite (uv sync --all-packages --group bench)",
    ),
    "agents": ("agents", "openai-agents (uv sync --all-packages --group bench)"),
}

GROWTH_TARGET = 1.5  # append N within 1.5x of append 10
LINEAR_TARGET = 1.5  # bytes per message may not grow by more than this between sizes
TARGET_SIZE = 10_000
PEER_COMPARE_SIZE = 1_000
TAIL = 100  # bounded load: the last 100 messages

_VOCABULARY = (
    "the session store keeps every message of a conversation so that an agent can "
    "resume where it stopped after a restart deploy or crash while the model streams "
    "tokens back to the user tool calls return results and the runtime records usage "
    "latency cost and errors for each turn a branch may be forked edited or compacted "
    "into a summary when the context window fills up and old turns are replayed from "
    "disk on the next request please check the invoice numbers against the ledger and "
    "tell me which customers are overdue by more than thirty days then draft a polite "
    "reminder in english and german with the amounts and due dates formatted as a table"
)
_WORDS = tuple(_VOCABULARY.split())


# --- the conversation -------------------------------------------------------------------


def message_text(index: int) -> str:
    """Deterministic text of 200-800 characters for message ``index``."""
    rng = random.Random(1_000_003 * index + 17)
    target = rng.randint(200, 800)
    parts: list[str] = [f"[{index}]"]
    length = len(parts[0])
    while length < target:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:target]


@dataclass(frozen=True)
class Conversation:
    """``size`` messages; even indexes are the user's, odd ones the assistant's."""

    size: int
    texts: tuple[str, ...]

    @classmethod
    def of(cls, size: int) -> Conversation:
        return cls(size, tuple(message_text(i) for i in range(size)))

    @staticmethod
    def role(index: int) -> str:
        return "user" if index % 2 == 0 else "assistant"


# --- the stores under test --------------------------------------------------------------


class Backend(abc.ABC):
    """One store: open it in a directory, start the conversation, append, reopen, load."""

    on_disk = True
    loaded: Any = None  # what the last load returned

    def __init__(self, conv: Conversation, directory: Path) -> None:
        self.conv = conv
        self.directory = directory
        self.stack = contextlib.AsyncExitStack()

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the store in ``self.directory``."""

    @abc.abstractmethod
    async def begin(self, slot: int = 0) -> None:
        """Create an empty conversation: slot 0 is measured, slot 1 is the short one."""

    @abc.abstractmethod
    async def append(self, index: int, slot: int = 0) -> None:
        """Append message ``index`` (modulo the size) to ``slot`` and persist it."""

    @abc.abstractmethod
    async def load(self) -> int:
        """Load the whole conversation; return how many messages came back."""

    async def load_tail(self, count: int) -> int | None:
        """Load only the last ``count`` messages (``None``: the store cannot)."""
        return None

    @abc.abstractmethod
    def last_text(self, loaded: Any) -> str:
        """The text of the last message in what :meth:`load` returned."""

    async def close(self) -> None:
        await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()

    async def reopen(self) -> None:
        await self.close()
        await self.open()


class SpectraBackend(Backend):
    """A spectra store driven through ``SessionManager``, as an application uses it."""

    def __init__(self, conv: Conversation, directory: Path, kind: str) -> None:
        super().__init__(conv, directory)
        core = importlib.import_module("spectra_core")
        self.kind = kind
        self.on_disk = kind != "memory"
        self.manager_cls: Any = core.SessionManager
        self.messages: list[Any] = [
            core.UserMessage(text)
            if Conversation.role(i) == "user"
            else core.AssistantMessage(
                text,
                model="gpt-4o-mini",
                provider="openai",
                usage=core.Usage(input_tokens=40 * i + 120, output_tokens=len(text) // 4),
                stop_reason="stop",
            )
            for i, text in enumerate(conv.texts)
        ]
        self.store: Any = None
        self.manager: Any = None
        self.sessions: dict[int, Any] = {}
        self.session_id = ""

    async def open(self) -> None:
        if self.kind == "memory":
            if self.store is None:  # memory: "reopening" keeps the same store
                self.store = importlib.import_module("spectra_memory").InMemorySessionStore()
        elif self.kind == "fs":
            cls = importlib.import_module("spectra_fs").FileSystemSessionStore
            self.store = await self.stack.enter_async_context(cls(self.directory / "sessions"))
        else:
            cls = importlib.import_module("spectra_sqlite").SQLiteSessionStore
            self.store = await self.stack.enter_async_context(cls(self.directory / "spectra.db"))
        await self.store.ping()  # connect now: load times a loaded store, not a connect
        self.manager = self.manager_cls(self.store)

    async def begin(self, slot: int = 0) -> None:
        self.sessions[slot] = await self.manager.create()
        self.session_id = self.sessions[0].id

    async def append(self, index: int, slot: int = 0) -> None:
        session = self.sessions[slot]
        self.manager.append_message(session, self.messages[index % len(self.messages)])
        await self.manager.save(session)

    async def load(self) -> int:
        loaded = await self.manager.load(self.session_id)
        self.loaded = loaded
        return len(loaded.entries)

    async def load_tail(self, count: int) -> int:
        loaded = await self.manager.load(self.session_id, tail=count)
        self.loaded = loaded
        return len(loaded.entries)

    def last_text(self, loaded: Any) -> str:
        return str(loaded.entries[-1].message.text)


@dataclass
class _Thread:
    """One LangGraph thread: its latest checkpoint, config and ``messages`` value."""

    thread_id: str
    checkpoint: Any
    config: Any = None
    state: list[Any] = field(default_factory=list)
    step: int = -1


class LangGraphBackend(Backend):
    """LangGraph's AsyncSqliteSaver fed the way a compiled graph persists a chat.

    The state has one ``messages`` channel (``Annotated[list, add_messages]``). For each
    message the node's write is saved with ``aput_writes`` and then the next checkpoint,
    whose ``messages`` channel holds the whole list, with ``aput`` -- one superstep. A real
    graph writes more (an input checkpoint per invoke, the reducer's work), so this is a
    lower bound on what a LangGraph user pays.
    """

    def __init__(self, conv: Conversation, directory: Path) -> None:
        super().__init__(conv, directory)
        msgs = importlib.import_module("langchain_core.messages")
        self.base: Any = importlib.import_module("langgraph.checkpoint.base")
        self.saver_cls: Any = importlib.import_module(
            "langgraph.checkpoint.sqlite.aio"
        ).AsyncSqliteSaver
        self.messages: list[Any] = [
            msgs.HumanMessage(content=text, id=f"msg-{i}")
            if Conversation.role(i) == "user"
            else msgs.AIMessage(
                content=text,
                id=f"msg-{i}",
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
                usage_metadata={
                    "input_tokens": 40 * i + 120,
                    "output_tokens": len(text) // 4,
                    "total_tokens": 40 * i + 120 + len(text) // 4,
                },
            )
            for i, text in enumerate(conv.texts)
        ]
        self.saver: Any = None
        self.threads: dict[int, _Thread] = {}

    async def open(self) -> None:
        path = str(self.directory / "langgraph.db")
        self.saver = await self.stack.enter_async_context(self.saver_cls.from_conn_string(path))
        await self.saver.setup()

    async def begin(self, slot: int = 0) -> None:
        thread = _Thread(f"thread-{uuid.uuid4().hex}", self.base.empty_checkpoint())
        config = {"configurable": {"thread_id": thread.thread_id, "checkpoint_ns": ""}}
        thread.config = await self.saver.aput(
            config, thread.checkpoint, {"source": "input", "step": -1, "parents": {}}, {}
        )
        self.threads[slot] = thread

    async def append(self, index: int, slot: int = 0) -> None:
        thread = self.threads[slot]
        message = self.messages[index % len(self.messages)]
        thread.step += 1
        await self.saver.aput_writes(
            thread.config, [("messages", [message])], task_id=str(uuid.uuid4())
        )
        thread.state = [*thread.state, message]  # the channel's new value: the whole list
        previous = thread.checkpoint["channel_versions"].get("messages")
        version = self.saver.get_next_version(previous, None)
        checkpoint = self.base.copy_checkpoint(thread.checkpoint)
        checkpoint["channel_values"]["messages"] = thread.state
        checkpoint["channel_versions"]["messages"] = version
        checkpoint = self.base.create_checkpoint(checkpoint, None, thread.step)
        thread.config = await self.saver.aput(
            thread.config,
            checkpoint,
            {"source": "loop", "step": thread.step, "parents": {}},
            {"messages": version},
        )
        thread.checkpoint = checkpoint

    async def load(self) -> int:
        found = await self.saver.aget_tuple(
            {"configurable": {"thread_id": self.threads[0].thread_id, "checkpoint_ns": ""}}
        )
        self.loaded = found.checkpoint["channel_values"].get("messages", [])
        return len(self.loaded)

    def last_text(self, loaded: Any) -> str:
        return str(loaded[-1].content)


class AgentsBackend(Backend):
    """The OpenAI Agents SDK's file-backed ``SQLiteSession``, one item per ``add_items``."""

    def __init__(self, conv: Conversation, directory: Path) -> None:
        super().__init__(conv, directory)
        self.session_cls: Any = importlib.import_module("agents").SQLiteSession
        self.items: list[dict[str, Any]] = [
            {"role": "user", "content": text}
            if Conversation.role(i) == "user"
            else {
                "id": f"msg_{i:08d}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
            for i, text in enumerate(conv.texts)
        ]
        self.ids: dict[int, str] = {}
        self.sessions: dict[int, Any] = {}

    async def open(self) -> None:
        for slot in self.ids:
            self._open(slot)

    def _open(self, slot: int) -> None:
        session = self.session_cls(self.ids[slot], self.directory / "agents.db")
        self.stack.callback(session.close)
        self.sessions[slot] = session

    async def begin(self, slot: int = 0) -> None:
        """A new session object; the SDK creates its row with the first item."""
        self.ids[slot] = f"session-{uuid.uuid4().hex}"
        self._open(slot)

    async def append(self, index: int, slot: int = 0) -> None:
        await self.sessions[slot].add_items([self.items[index % len(self.items)]])

    async def load(self) -> int:
        self.loaded = await self.sessions[0].get_items()
        return len(self.loaded)

    async def load_tail(self, count: int) -> int:
        self.loaded = await self.sessions[0].get_items(limit=count)
        return len(self.loaded)

    def last_text(self, loaded: Any) -> str:
        item = loaded[-1]
        content = item["content"]
        return str(content if isinstance(content, str) else content[0]["text"])


def make_backend(kind: str, conv: Conversation, directory: Path) -> Backend:
    if kind in SPECTRA_STORES:
        return SpectraBackend(conv, directory, kind)
    if kind == "langgraph":
        return LangGraphBackend(conv, directory)
    return AgentsBackend(conv, directory)


def missing_reason(kind: str) -> str | None:
    """Why ``kind`` cannot be measured here, or ``None`` if its package imports."""
    module, package = PACKAGES[kind]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{LABELS[kind]}: not measured, {package} is not installed ({exc})"
    return None


# --- measuring --------------------------------------------------------------------------


@dataclass
class Result:
    """What one store did with one conversation size."""

    store: str
    size: int
    append_s: list[float] = field(default_factory=list)
    load_s: float = float("nan")
    tail_load_s: float = float("nan")  # the last TAIL messages only (nan: not supported)
    paired: float = float("nan")  # append at N / append at 10, measured in turns
    bytes_on_disk: int | None = None
    note: str = ""

    @property
    def reached(self) -> int:
        return len(self.append_s)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.append_s)

    @property
    def tail_mean(self) -> float:
        """Mean over the last 10% of appends (at least one)."""
        return statistics.fmean(self.append_s[-max(1, self.reached // 10) :])

    @property
    def at_10(self) -> float:
        """Median of appends 6..15 (the neighbourhood of message 10)."""
        return statistics.median(self.append_s[5:15] or self.append_s)

    @property
    def at_n(self) -> float:
        """Median of the last 10 appends (the neighbourhood of message N)."""
        return statistics.median(self.append_s[-10:])

    @property
    def growth(self) -> float:
        return self.at_n / self.at_10

    @property
    def bytes_per_message(self) -> float | None:
        if self.bytes_on_disk is None or not self.reached:
            return None
        return self.bytes_on_disk / self.reached


def disk_usage(directory: Path) -> int:
    """Bytes of every file under ``directory`` (database, -wal, -shm, JSONL, index...)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


@dataclass(frozen=True)
class Limits:
    """Budgets that stop a peer run early (the result is then marked partial)."""

    peer_seconds: float
    peer_bytes: int
    load_repeats: int
    warmup: int
    pairs: int


async def measure(kind: str, conv: Conversation, root: Path, limits: Limits) -> Result:
    """Write ``conv`` message by message into a fresh ``kind`` store, then load it."""
    result = Result(kind, conv.size)
    directory = Path(tempfile.mkdtemp(prefix=f"{kind}-{conv.size}-", dir=root))
    backend = make_backend(kind, conv, directory)
    peer = kind in PEER_STORES
    loads: list[float] = []
    tail_loads: list[float] = []
    gc.collect()
    await backend.open()
    try:
        await backend.begin()
        started = time.perf_counter()
        for index in range(conv.size):
            t0 = time.perf_counter()
            await backend.append(index)
            result.append_s.append(time.perf_counter() - t0)
            if peer and index % 50 == 49 and index + 1 < conv.size:
                stop = over_budget(directory, started, limits)
                if stop:
                    result.note = f"stopped at message {index + 1:,} of {conv.size:,}: {stop}"
                    break
        if result.note and backend.on_disk:
            # Quadratic growth (each step re-stores the whole history) is an assumption
            # here, labelled as such: bytes(N) ~ bytes(k) * (N / k)^2.
            projected = disk_usage(directory) * (conv.size / result.reached) ** 2
            result.note += (
                f"; if its bytes keep growing quadratically, {conv.size:,} messages "
                f"would take ~{fmt_bytes(projected)}"
            )
        await backend.close()
        if backend.on_disk:
            result.bytes_on_disk = disk_usage(directory)
        for _ in range(limits.load_repeats):
            await backend.reopen()  # a cold store object; the OS page cache stays warm
            backend.loaded = None  # free the last result outside the clock
            t0 = time.perf_counter()
            count = await backend.load()
            loads.append(time.perf_counter() - t0)
            check_loaded(backend, kind, count, result.reached, result.reached)
            await backend.reopen()
            backend.loaded = None
            t0 = time.perf_counter()
            tail = await backend.load_tail(TAIL)
            if tail is not None:
                tail_loads.append(time.perf_counter() - t0)
                check_loaded(backend, kind, tail, min(TAIL, result.reached), result.reached)
        result.load_s = statistics.median(loads)
        if tail_loads:
            result.tail_load_s = statistics.median(tail_loads)
        result.paired = await paired_growth(backend, result.reached, limits.pairs)
    finally:
        await backend.close()
    shutil.rmtree(directory, ignore_errors=True)
    return result


async def paired_growth(backend: Backend, reached: int, pairs: int) -> float:
    """Append cost at the long conversation / at a 10-message one, measured in turns.

    The disk's speed drifts during a run (other processes' fsyncs); alternating appends
    to the long session and to a short one in the same store puts both under the same
    conditions, so the ratio shows only what the session's length costs.
    """
    await backend.begin(1)
    for index in range(9):
        await backend.append(index, 1)
    short: list[float] = []
    long: list[float] = []
    for k in range(pairs):
        turns = ((1, short), (0, long)) if k % 2 == 0 else ((0, long), (1, short))
        for slot, bucket in turns:
            index = 9 + k if slot == 1 else reached + k
            t0 = time.perf_counter()
            await backend.append(index, slot)
            bucket.append(time.perf_counter() - t0)
    return statistics.median(long) / statistics.median(short)


def fsync_baseline(directory: Path, samples: int = 30) -> float:
    """Median time of appending 600 bytes to a file and fsyncing it, on this disk."""
    path = directory / "fsync-probe"
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 600)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def over_budget(directory: Path, started: float, limits: Limits) -> str | None:
    if time.perf_counter() - started > limits.peer_seconds:
        return f"over the {limits.peer_seconds:g} s peer time budget"
    used = disk_usage(directory)
    if used > limits.peer_bytes:
        return f"{fmt_bytes(used)} on disk, over the {fmt_bytes(limits.peer_bytes)} budget"
    return None


def check_loaded(backend: Backend, kind: str, count: int, expected: int, written: int) -> None:
    """A benchmark that loses messages measures nothing: fail loudly."""
    if count != expected:
        raise RuntimeError(f"{LABELS[kind]} loaded {count} messages, expected {expected}")
    if expected and backend.last_text(backend.loaded) != backend.conv.texts[written - 1]:
        raise RuntimeError(f"{LABELS[kind]} loaded a last message unlike the one written")


async def warm_up(kind: str, root: Path, limits: Limits) -> None:
    """Exercise every code path once (imports, schema creation, caches) before timing."""
    if limits.warmup:
        await measure(kind, Conversation.of(limits.warmup), root, limits)


async def run(
    sizes: Sequence[int],
    stores: Sequence[str],
    *,
    limits: Limits,
    max_peer_size: int | None = None,
    workdir: Path | None = None,
    out: Any = None,
    notes: list[str] | None = None,
) -> list[Result]:
    """Measure ``stores`` at every size; print progress; return the results."""
    out = out or sys.stdout
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="spectra-bench-stores-", dir=workdir) as tmp:
        root = Path(tmp)
        floor_start = fsync_baseline(root)
        print(f"  fsync floor at start: {fmt_time(floor_start)}", file=out, flush=True)
        for kind in stores:
            try:
                await warm_up(kind, root, limits)
            except Exception as exc:  # measure() below reports the failure per size
                print(f"  {LABELS[kind]}: warm-up FAILED: {type(exc).__name__}: {exc}", file=out)
        for size in sizes:
            conv = Conversation.of(size)
            for kind in stores:
                if kind in PEER_STORES and max_peer_size is not None and size > max_peer_size:
                    print(
                        f"  {LABELS[kind]}: {size:,} messages skipped (--max-peer-size "
                        f"{max_peer_size:,})",
                        file=out,
                    )
                    continue
                try:
                    result = await measure(kind, conv, root, limits)
                except Exception as exc:  # report it and go on with the other stores
                    failure = f"{LABELS[kind]}: {size:,} messages FAILED: {exc!r}"
                    print(f"  {failure}", file=out, flush=True)
                    if notes is not None:
                        notes.append(failure)
                    continue
                results.append(result)
                print(
                    f"  {LABELS[kind]:<28} {size:>6,} messages: append mean "
                    f"{fmt_time(result.mean)}, load {fmt_time(result.load_s)}"
                    + (f"  [{result.note}]" if result.note else ""),
                    file=out,
                    flush=True,
                )
        floor_end = fsync_baseline(root)
    floor = (
        f"On this disk, appending 600 bytes to a file and fsyncing it took "
        f"{fmt_time(floor_start)} at the start of the run and {fmt_time(floor_end)} at the end "
        "(median of 30): the floor of a durable append."
    )
    if notes is not None:
        notes.append(floor)
    return results


# --- reporting --------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds != seconds:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(count: float | None) -> str:
    if count is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    head = (
        "| store | messages | append mean | append, last 10% | append #10 | append #N "
        f"| #N / #10 | #N / #10 paired | load | load last {TAIL} | bytes on disk "
        "| bytes / message |"
    )
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for r in results:
        size = f"{r.size:,}" if r.reached == r.size else f"{r.reached:,} of {r.size:,} *"
        lines.append(
            f"| {LABELS[r.store]} | {size} | {fmt_time(r.mean)} | {fmt_time(r.tail_mean)} "
            f"| {fmt_time(r.at_10)} | {fmt_time(r.at_n)} | {r.growth:.2f}x | {r.paired:.2f}x "
            f"| {fmt_time(r.load_s)} | {fmt_time(r.tail_load_s)} | {fmt_bytes(r.bytes_on_disk)} "
            f"| {fmt_bytes(r.bytes_per_message)} |"
        )
    return "\n".join(lines)


def _find(results: Sequence[Result], store: str, size: int) -> Result | None:
    return next((r for r in results if r.store == store and r.size == size), None)


def ratios(results: Sequence[Result]) -> list[str]:
    """Peer / ours for append mean, load and bytes, per size (>1: ours is better)."""
    lines: list[str] = []
    for ours in (r for r in results if r.store in SPECTRA_STORES):
        for peer_kind in PEER_STORES:
            peer = _find(results, peer_kind, ours.size)
            if peer is None:
                continue
            partial = " (peer run partial)" if peer.reached != peer.size else ""
            size_bytes = (
                f", bytes {peer.bytes_on_disk / ours.bytes_on_disk:.1f}x"
                if peer.bytes_on_disk and ours.bytes_on_disk and peer.reached == ours.reached
                else ""
            )
            lines.append(
                f"- {ours.size:,} messages, {LABELS[ours.store]} vs {LABELS[peer_kind]}: "
                f"append {peer.mean / ours.mean:.1f}x, "
                f"load {peer.load_s / ours.load_s:.1f}x{size_bytes}{partial}"
            )
    return lines


def targets(results: Sequence[Result]) -> list[str]:
    """PASS / FAIL / n/a for each of issue 4's targets, per spectra store."""
    lines: list[str] = []
    for kind in SPECTRA_STORES:
        mine = sorted((r for r in results if r.store == kind), key=lambda r: r.size)
        if not mine:
            continue
        label = LABELS[kind]
        largest = mine[-1]
        where = (
            f"message {largest.size:,}"
            if largest.size == TARGET_SIZE
            else f"message {largest.size:,} (target is at {TARGET_SIZE:,}; not measured)"
        )
        lines.append(
            f"- {label}: append {where} within {GROWTH_TARGET}x of message 10: "
            f"{verdict(largest.paired <= GROWTH_TARGET)} ({largest.paired:.2f}x paired, "
            f"{largest.growth:.2f}x in sequence)"
        )
        sized = [r for r in mine if r.bytes_per_message is not None]
        if len(sized) >= 2:
            small, big = sized[-2], sized[-1]
            assert small.bytes_per_message is not None and big.bytes_per_message is not None
            growth = big.bytes_per_message / small.bytes_per_message
            lines.append(
                f"- {label}: bytes on disk linear in messages ({small.size:,} -> "
                f"{big.size:,}: {fmt_bytes(small.bytes_per_message)} -> "
                f"{fmt_bytes(big.bytes_per_message)} per message): "
                f"{verdict(growth <= LINEAR_TARGET)} ({growth:.2f}x per message)"
            )
        else:
            why = "in memory" if kind == "memory" else "needs two sizes"
            lines.append(f"- {label}: bytes on disk linear in messages: n/a ({why})")
        ours = _find(results, kind, PEER_COMPARE_SIZE)
        peers = [_find(results, p, PEER_COMPARE_SIZE) for p in PEER_STORES]
        if ours is None or any(p is None for p in peers):
            lines.append(
                f"- {label}: faster than both peers at {PEER_COMPARE_SIZE:,} messages: n/a "
                f"(needs {label} and both peers measured at {PEER_COMPARE_SIZE:,})"
            )
        else:
            measured = [p for p in peers if p is not None]
            append_ok = all(ours.mean < p.mean for p in measured)
            load_ok = all(ours.load_s < p.load_s for p in measured)
            lines.append(
                f"- {label}: faster than both peers at {PEER_COMPARE_SIZE:,} messages: "
                f"append {verdict(append_ok)}, load {verdict(load_ok)}"
            )
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: Sequence[Result], notes: Sequence[str], out: Any) -> None:
    print("\n## Session stores: append one message + save, then load\n", file=out)
    print(table(results), file=out)
    partial = [r for r in results if r.note]
    for r in partial:
        print(f"\n\\* {LABELS[r.store]}: {r.note}.", file=out)
    for note in notes:
        print(f"\n{note}", file=out)
    lines = ratios(results)
    if lines:
        print("\n## Ratios (peer / spectra: above 1x, spectra is faster or smaller)\n", file=out)
        print("\n".join(lines), file=out)
    lines = targets(results)
    if lines:
        print("\n## Targets (issue 4; informational)\n", file=out)
        print("\n".join(lines), file=out)


# --- command line -----------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes wants integers like 10,1000: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"--sizes wants positive integers: {text!r}")
    return sizes


def _stores(text: str) -> list[str]:
    stores = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [s for s in stores if s not in ALL_STORES]
    if unknown or not stores:
        raise argparse.ArgumentTypeError(
            f"--stores: unknown {unknown} (choose from {', '.join(ALL_STORES)})"
        )
    return stores


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stores",
        description="Session stores: spectra memory/fs/sqlite vs LangGraph and the Agents SDK.",
    )
    parser.add_argument("--sizes", type=_sizes, help="messages per conversation (10,1000,10000)")
    parser.add_argument(
        "--quick", action="store_true", help="small warm-up, one load, default sizes 10,1000"
    )
    parser.add_argument(
        "--stores", type=_stores, default=list(ALL_STORES), help=f"subset of {','.join(ALL_STORES)}"
    )
    parser.add_argument(
        "--max-peer-size", type=int, default=None, help="do not run the peers above this size"
    )
    parser.add_argument(
        "--peer-seconds",
        type=float,
        default=180.0,
        help="stop a peer run after this many seconds of appends (default 180)",
    )
    parser.add_argument(
        "--peer-disk-mb",
        type=int,
        default=2048,
        help="stop a peer run when its files pass this many MB (default 2048)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where temp dirs go")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [10, 1000] if args.quick else [10, 1000, 10_000]
    return args


def main(argv: Sequence[str] | None = None, out: Any = None) -> int:
    """Run the benchmark and print the report; always returns 0 (timings are informational)."""
    args = parse_args(argv)
    out = out or sys.stdout
    notes: list[str] = []
    stores: list[str] = []
    for kind in args.stores:
        reason = missing_reason(kind)
        if reason is None:
            stores.append(kind)
        else:
            notes.append(reason)
            print(reason, file=out)
    if args.max_peer_size is not None and any(s > args.max_peer_size for s in args.sizes):
        notes.append(f"Peers capped at {args.max_peer_size:,} messages (--max-peer-size).")
    limits = Limits(
        peer_seconds=args.peer_seconds,
        peer_bytes=args.peer_disk_mb * 1024 * 1024,
        load_repeats=1 if args.quick else 3,
        warmup=5 if args.quick else 50,
        pairs=6 if args.quick else 20,
    )
    print(
        f"sizes {', '.join(f'{s:,}' for s in args.sizes)}; stores "
        f"{', '.join(LABELS[s] for s in stores) or 'none'}; python {sys.version.split()[0]}",
        file=out,
        flush=True,
    )
    results = asyncio.run(
        run(
            args.sizes,
            stores,
            limits=limits,
            max_peer_size=args.max_peer_size,
            workdir=args.workdir,
            out=out,
            notes=notes,
        )
    )
    report(results, notes, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
