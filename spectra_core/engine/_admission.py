"""Admission: whether and when a run may start.

In order: the input and options are checked (nothing claimed yet), the session is
claimed (busy policy), loaded and its owner checked, a rate-limit reservation taken, a
concurrency slot taken, a new session created, the reservation committed. After every
await the engine's lifecycle is checked again, so a run being admitted while
``stop()`` runs is refused; whatever is refused gives back what it had taken.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import attrs
import structlog

from ..clock import Clock, utc_from_timestamp
from ..errors import (
    CapacityError,
    InvalidArgumentError,
    RateLimitedError,
    SessionBusyError,
    SessionNotFoundError,
)
from ..ids import validate_id
from ..manager import SessionManager
from ..models import ImageContent, ModelRef, Session, SessionConfig, TextContent, UserMessage
from ..text import check_text
from ._limits import Admission, AnyRateLimiter, admit_rate_limit
from ._queue import EventQueue
from ._run import Run, describe
from .events import EventType, RunStatus
from .options import RunOptions, RunResult

__all__ = ["Admissions", "BusyPolicy", "Policy", "user_message"]

log = structlog.get_logger("spectra.engine")

BusyPolicy = Literal["reject", "wait"]
#: How many ended runs :meth:`SessionEngine.wait_run` still knows.
KEEP_ENDED = 1024
#: Longest user id a run accepts (ids are stored with the session and key rate limits).
MAX_USER_ID_LENGTH = 256
_MIME = re.compile(r"image/[A-Za-z0-9.+-]+")


class Policy(Protocol):
    """The engine settings admission reads (live, at each admission)."""

    engine_id: str
    rate_limiter: AnyRateLimiter | None
    max_concurrent_sessions: int
    capacity_wait_ms: int
    busy: BusyPolicy
    max_input_chars: int
    max_queued_events: int
    default_model: ModelRef
    clock: Clock


def user_message(input: object, max_chars: int) -> UserMessage:
    """The user's input as a message, or InvalidArgumentError saying what is wrong:
    not text or blocks, empty, too long, text UTF-8 cannot encode, a bad image."""
    if isinstance(input, str):
        message = UserMessage(check_text(input, "input"))
    elif isinstance(input, UserMessage):
        message = input
        for i, block in enumerate(message.content):
            if isinstance(block, TextContent):
                check_text(block.text, f"input content[{i}].text")
            elif isinstance(block, ImageContent):
                _check_image(block, f"input content[{i}]")
            else:
                raise InvalidArgumentError(
                    f"input content[{i}]: expected TextContent or ImageContent, "
                    f"got {type(block).__name__}"
                )
    else:
        raise InvalidArgumentError(
            f"input must be a string or a UserMessage, got {type(input).__name__}"
        )
    text = message.text
    has_image = any(isinstance(b, ImageContent) for b in message.content)
    if not text.strip() and not has_image:
        raise InvalidArgumentError("input is empty")
    if len(text) > max_chars:
        raise InvalidArgumentError(
            f"input is {len(text):,} characters; the limit is {max_chars:,} (max_input_chars)"
        )
    return message


def _check_image(image: ImageContent, where: str) -> None:
    if not isinstance(image.mime_type, str) or _MIME.fullmatch(image.mime_type) is None:
        raise InvalidArgumentError(
            f"{where}.mime_type: expected an image type like 'image/png', got {image.mime_type!r}"
        )
    if not isinstance(image.data, str) or not image.data:
        raise InvalidArgumentError(f"{where}.data: expected the image as base64 text")
    try:
        base64.b64decode(image.data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InvalidArgumentError(f"{where}.data: not valid base64") from None


def _check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not user_id:
        raise InvalidArgumentError("user_id must be a non-empty string")
    check_text(user_id, "user_id")
    if "\x00" in user_id or len(user_id) > MAX_USER_ID_LENGTH:
        raise InvalidArgumentError(f"user_id: at most {MAX_USER_ID_LENGTH} characters, no NUL")
    return user_id


@attrs.define(eq=False)
class Admissions:
    """The runs of one engine: admitting them, and freeing what they hold when they end.

    ``accepting`` raises when the engine takes no new runs; ``start`` starts an admitted
    run (synchronously, right after the last lifecycle check).
    """

    policy: Policy
    manager: SessionManager
    accepting: Callable[[], None]
    start: Callable[[Run], None]
    runs: dict[str, Run] = attrs.field(factory=dict)
    by_session: dict[str, Run] = attrs.field(factory=dict)
    recent: dict[str, Run] = attrs.field(factory=dict)  # the last runs that ended
    _claims: dict[str, asyncio.Event] = attrs.field(factory=dict)  # sessions being admitted
    _reserved: int = 0  # slots taken by runs being admitted
    _slot_freed: asyncio.Event = attrs.field(factory=asyncio.Event)
    _pending: int = 0  # admissions in progress
    _settled: asyncio.Event = attrs.field(factory=asyncio.Event)

    def __attrs_post_init__(self) -> None:
        self._settled.set()

    async def settled(self) -> None:
        """Return once no admission is in progress."""
        while self._pending:
            await self._settled.wait()

    def wake(self) -> None:
        """Wake admissions waiting for a slot (they re-check the lifecycle)."""
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    def ended(self, run: Run) -> None:
        """Free the slot and the session of a run that has ended."""
        self.runs.pop(run.run_id, None)
        if self.by_session.get(run.session.id) is run:
            del self.by_session[run.session.id]
        self.recent[run.run_id] = run
        if len(self.recent) > KEEP_ENDED:
            del self.recent[next(iter(self.recent))]
        self.wake()

    async def admit(
        self, user_id: object, input: object, session_id: object, options: object
    ) -> Run:
        """Admit and start a run (or return a rate-limited one, already ended)."""
        self.accepting()
        opts = RunOptions.coerce(options)
        message = user_message(input, self.policy.max_input_chars)
        user = _check_user_id(user_id)
        if session_id is not None:
            validate_id(session_id)
        assert session_id is None or isinstance(session_id, str)
        self._pending += 1
        self._settled.clear()
        try:
            if session_id is not None:
                await self._claim(session_id)
            try:
                return await self._admit_claimed(user, message, session_id, opts)
            finally:
                self._unclaim(session_id)
        finally:
            self._pending -= 1
            if not self._pending:
                self._settled.set()

    async def admit_unread(
        self, user_id: object, input: object, session_id: object, options: object
    ) -> Run:
        """Admit a run whose events no local reader takes (they go to the log, if any);
        RateLimitedError if it is rate limited."""
        run = await self.admit(user_id, input, session_id, options)
        if run.result is not None and run.result.status is RunStatus.RATE_LIMITED:
            raise RateLimitedError(run.result.error or "rate limited", run.retry_after or 0.0)
        await run.log_ready.wait()
        if not run.logged:
            run.queue.close()  # nobody reads them here: the run must not wait for a reader
        return run

    async def _claim(self, session_id: str) -> None:
        """Wait until no run holds or is admitting ``session_id`` (or refuse, with
        ``busy="reject"``), then claim it; the check and the claim are one step."""
        while True:
            self.accepting()
            running = self.by_session.get(session_id)
            admitting = self._claims.get(session_id)
            if (running is not None or admitting is not None) and self.policy.busy == "reject":
                raise SessionBusyError(
                    f"session {session_id!r} already has a run in progress; retry when it "
                    "ends or use busy='wait'"
                )
            if running is not None:
                await running.done.wait()
            elif admitting is not None:
                await admitting.wait()
            else:
                self._claims[session_id] = asyncio.Event()
                return

    def _unclaim(self, session_id: str | None) -> None:
        if session_id is not None:
            claim = self._claims.pop(session_id, None)
            if claim is not None:
                claim.set()

    async def _admit_claimed(
        self, user_id: str, message: UserMessage, session_id: str | None, opts: RunOptions
    ) -> Run:
        session = await self._load_owned(user_id, session_id) if session_id else None
        self.accepting()
        reservation = await admit_rate_limit(
            self.policy.rate_limiter,
            user_id=user_id,
            tenant_id=opts.tenant_id or (session.tenant_id if session else None),
            provider=(opts.model or self.policy.default_model).provider,
            session_id=session_id,
        )
        if reservation.rejected:
            return await self._rate_limited(user_id, message, session, opts, reservation)
        created: Session | None = None
        try:
            self.accepting()
            await self._take_slot()
        except BaseException:
            await _quietly(reservation.release())
            raise
        try:
            if session is None:
                session = created = await self.manager.create(
                    SessionConfig(
                        model=opts.model,
                        system_prompt=opts.system_prompt,
                        metadata=dict(opts.metadata),
                    ),
                    user_id=user_id,
                    tenant_id=opts.tenant_id,
                )
            await reservation.commit()
            self.accepting()
        except BaseException:
            self._reserved -= 1
            self.wake()
            await _quietly(reservation.release())
            if created is not None:
                await _quietly(self.manager.delete(created.id))
            raise
        # no await from the last lifecycle check to the start: stop() sees this run
        self._reserved -= 1
        run = self._new_run(session, user_id, message, opts)
        self.runs[run.run_id] = run
        self.by_session[session.id] = run
        self.start(run)
        return run

    def _new_run(
        self, session: Session, user_id: str, message: UserMessage, opts: RunOptions
    ) -> Run:
        return Run(
            uuid.uuid4().hex,
            session,
            user_id,
            message,
            opts,
            self.policy.clock,
            EventQueue(self.policy.max_queued_events),
        )

    async def _load_owned(self, user_id: str, session_id: str) -> Session:
        session = await self.manager.load(session_id)
        if session.user_id is not None and session.user_id != user_id:
            raise SessionNotFoundError(session_id)  # never reveal another user's session
        return session

    def _full(self) -> bool:
        return len(self.runs) + self._reserved >= self.policy.max_concurrent_sessions

    async def _take_slot(self) -> None:
        policy = self.policy
        if self._full():
            if policy.capacity_wait_ms <= 0:
                raise CapacityError(
                    f"engine {policy.engine_id} is at capacity "
                    f"({policy.max_concurrent_sessions} concurrent sessions); retry later"
                )
            try:
                async with asyncio.timeout(policy.capacity_wait_ms / 1000):
                    while self._full():
                        await self._slot_freed.wait()
                        self.accepting()
            except TimeoutError:
                raise CapacityError(
                    f"engine {policy.engine_id} stayed at capacity "
                    f"({policy.max_concurrent_sessions}) for {policy.capacity_wait_ms} ms"
                ) from None
        self._reserved += 1

    async def _rate_limited(
        self,
        user_id: str,
        message: UserMessage,
        session: Session | None,
        opts: RunOptions,
        reservation: Admission,
    ) -> Run:
        retry_after = reservation.retry_after
        wait = "no retry can pass" if math.isinf(retry_after) else f"retry after {retry_after:.3g}s"
        error = f"rate limited for user {user_id!r}; {wait}"
        now = utc_from_timestamp(self.policy.clock.time())
        placeholder = session or Session(id="-", created_at=now, updated_at=now, user_id=user_id)
        run = self._new_run(placeholder, user_id, message, opts)
        run.retry_after = retry_after
        if session is not None:
            self.manager.append_audit(
                session,
                "rate_limited",
                {
                    "run_id": run.run_id,
                    "user_id": user_id,
                    "engine_id": self.policy.engine_id,
                    "retry_after": None if math.isinf(retry_after) else retry_after,
                },
            )
            await self.manager.save(session)
        log.info(
            "run rate limited",
            engine_id=self.policy.engine_id,
            user_id=user_id,
            session_id=placeholder.id,
            retry_after=retry_after,
        )
        run.result = RunResult(
            session_id=placeholder.id,
            run_id=run.run_id,
            status=RunStatus.RATE_LIMITED,
            final_message=None,
            error=error,
        )
        run.emit(
            EventType.RUN_END, status=RunStatus.RATE_LIMITED, error=error, retry_after=retry_after
        )
        run.log_ready.set()  # never logged: its one event is read from its queue
        run.done.set()
        return run


async def _quietly(undo: Awaitable[object]) -> None:
    """Await an undo step; its failure is logged, never raised over the original error."""
    try:
        await undo
    except Exception as exc:
        log.warning("could not undo an admission step", error=describe(exc))
