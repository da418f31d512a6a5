"""CompositeRateLimiter: several limiters, each keyed on one dimension, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from ..errors import InvalidArgumentError
from ..plugins import closest
from ._types import (
    AtomicGroup,
    RateLimiter,
    RateLimitRequest,
    RateLimitResult,
    Reservation,
    ReservationBase,
    check_cost,
)

__all__ = ["DIMENSIONS", "CompositeRateLimiter", "KeyFunc", "combine_results"]

#: A key function: the key a limiter sees for a request.
KeyFunc = Callable[[RateLimitRequest], str]

#: The request dimensions a composite entry can key on, and the request field each reads.
#: ``"global"`` is one key (``"global"``) shared by every request.
DIMENSIONS: Mapping[str, str | None] = {
    "user": "user_id",
    "tenant": "tenant_id",
    "provider": "provider",
    "session": "session_id",
    "global": None,
}


class _Rule:
    __slots__ = ("dimension", "field", "func", "index", "limiter")

    def __init__(self, index: int, limiter: RateLimiter, key: str | KeyFunc) -> None:
        self.index = index
        self.limiter = limiter
        self.func: KeyFunc | None = None
        self.field: str | None = None
        if isinstance(key, str):
            self.dimension = key
            self.field = DIMENSIONS[key]
        else:
            self.dimension = getattr(key, "__name__", repr(key))
            self.func = key

    def key_for(self, request: RateLimitRequest) -> str:
        if self.func is not None:
            value: object = self.func(request)
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(
                    f"rate limiter #{self.index} key function {self.dimension} returned "
                    f"{value!r} for {request!r}; it must return a non-empty string"
                )
            return value
        if self.field is None:
            return "global"
        value = getattr(request, self.field)
        if value is None or value == "":
            raise InvalidArgumentError(
                f"rate limiter #{self.index} is keyed on {self.dimension!r} but the request "
                f"has no {self.field}: {request!r}; pass RateLimitRequest(..., "
                f"{self.field}=...) or key this limiter on another dimension"
            )
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"request {self.field} must be a string, got {value!r} (rate limiter "
                f"#{self.index}, keyed on {self.dimension!r})"
            )
        return value


def combine_results(results: Sequence[RateLimitResult]) -> RateLimitResult:
    """The most restrictive of several results: admitted only if all were, the lowest
    ``remaining``, the latest ``reset_at`` and the latest ``retry_after``."""
    allowed = all(r.allowed for r in results)
    return RateLimitResult(
        allowed,
        min(r.remaining for r in results),
        max(r.reset_at for r in results),
        0.0 if allowed else max(r.retry_after for r in results if not r.allowed),
    )


class _CompositeReservation(ReservationBase):
    __slots__ = ("_parts", "_result")

    def __init__(self, result: RateLimitResult, parts: list[Reservation]) -> None:
        self._result = result
        self._parts = parts

    @property
    def result(self) -> RateLimitResult:
        return self._result

    async def commit(self) -> None:
        parts, self._parts = self._parts, []
        for part in parts:
            await part.commit()

    async def release(self) -> None:
        parts, self._parts = self._parts, []
        await _release_all(parts)


async def _release_all(parts: Iterable[Reservation]) -> None:
    error: BaseException | None = None
    for part in parts:
        try:
            await part.release()
        except BaseException as exc:  # release the others, then re-raise the first
            error = error or exc
    if error is not None:
        raise error


class CompositeRateLimiter:
    """Several limiters checked together, all or nothing.

    ``limiters`` is a list of ``{"limiter": <RateLimiter>, "key": <dimension>}`` where the
    dimension is ``"user"``, ``"tenant"``, ``"provider"``, ``"session"``, ``"global"`` or a
    function from :class:`RateLimitRequest` to a key string. Each limiter sees the
    dimension's value (e.g. the tenant id) as its key.

    A request is admitted only when every limiter admits it; a request rejected by any
    limiter consumes nothing from any of them (each limiter's cost is reserved, then
    committed when all admitted, released otherwise). The result is the most restrictive
    (see :func:`combine_results`). While a reservation is pending, concurrent requests see
    its cost as used, so a composite may briefly reject a request that a later release
    would have let through; it never over-admits.
    """

    def __init__(self, limiters: Iterable[Mapping[str, Any]]) -> None:
        if isinstance(limiters, Mapping | str | bytes):
            raise InvalidArgumentError(
                "CompositeRateLimiter takes a list of {'limiter': ..., 'key': ...} entries, "
                f"got {type(limiters).__name__}"
            )
        rules: list[_Rule] = []
        seen: dict[int, int] = {}
        for index, spec in enumerate(limiters):
            limiter, key = _parse_entry(index, spec)
            if id(limiter) in seen:
                raise InvalidArgumentError(
                    f"rate limiter #{index} is the same object as #{seen[id(limiter)]}; "
                    "give each composite entry its own limiter (keys of different "
                    "dimensions would share one budget)"
                )
            seen[id(limiter)] = index
            rules.append(_Rule(index, limiter, key))
        if not rules:
            raise InvalidArgumentError(
                "CompositeRateLimiter needs at least one {'limiter': ..., 'key': ...} entry; "
                "an empty chain would admit everything"
            )
        self._rules = rules

    def __repr__(self) -> str:
        inner = ", ".join(f"{r.dimension}: {r.limiter!r}" for r in self._rules)
        return f"CompositeRateLimiter([{inner}])"

    @property
    def limiters(self) -> list[tuple[RateLimiter, str]]:
        """The limiters and the dimension (or key function name) each is keyed on."""
        return [(r.limiter, r.dimension) for r in self._rules]

    def keys_for(self, request: RateLimitRequest | str) -> list[str]:
        """The key each limiter sees for ``request``; raises if a dimension is missing."""
        req = _as_request(request)
        return [rule.key_for(req) for rule in self._rules]

    async def check_limit(self, request: RateLimitRequest | str, cost: int = 1) -> RateLimitResult:
        """Admit ``request`` (a :class:`RateLimitRequest`, or a user id) if every limiter
        does, consuming ``cost`` from each; otherwise consume nothing."""
        reservation = await self.reserve(request, cost)
        await reservation.commit()
        return reservation.result

    async def reserve(
        self, request: RateLimitRequest | str, cost: int = 1
    ) -> _CompositeReservation:
        """Reserve ``cost`` from every limiter; when any rejects, nothing stays held."""
        check_cost(cost)
        keys = self.keys_for(request)
        group = self._atomic_group()
        if group is not None:
            pairs = [(rule.limiter, key) for rule, key in zip(self._rules, keys, strict=True)]
            held = await group.reserve_all(pairs, cost)
            return _CompositeReservation(held.result, [held] if held.result.allowed else [])
        parts: list[Reservation] = []
        try:
            for rule, key in zip(self._rules, keys, strict=True):
                parts.append(await rule.limiter.reserve(key, cost))
        except BaseException:
            await _release_all(parts)
            raise
        result = combine_results([p.result for p in parts])
        if not result.allowed:
            await _release_all(parts)
            parts = []
        return _CompositeReservation(result, parts)

    def _atomic_group(self) -> AtomicGroup | None:
        """The group that decides every limiter of this chain in one atomic call, when
        they all share one (see :class:`AtomicGroup`); else None."""
        if len(self._rules) < 2:
            return None
        groups: list[object] = []
        for rule in self._rules:
            of = getattr(rule.limiter, "atomic_group", None)
            group = of() if callable(of) else None
            if group is None or (groups and group != groups[0]):
                return None
            groups.append(group)
        # a structural check: isinstance() against the runtime-checkable protocol costs
        # more than the rest of a decision
        first = groups[0]
        return cast(AtomicGroup, first) if callable(getattr(first, "reserve_all", None)) else None


def _as_request(request: object) -> RateLimitRequest:
    if isinstance(request, RateLimitRequest):
        return request
    if isinstance(request, str):
        if not request:
            raise InvalidArgumentError("rate limit user id must not be empty")
        return RateLimitRequest(user_id=request)
    raise InvalidArgumentError(
        f"a composite rate limit check takes a RateLimitRequest or a user id string, "
        f"got {type(request).__name__}"
    )


def _parse_entry(index: int, spec: object) -> tuple[RateLimiter, str | KeyFunc]:
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(
            f"rate limiter #{index} must be a mapping {{'limiter': ..., 'key': ...}}, "
            f"got {type(spec).__name__}"
        )
    unknown = sorted(set(spec) - {"limiter", "key"})
    if unknown:
        raise InvalidArgumentError(
            f"rate limiter #{index} has unknown field(s) {', '.join(map(repr, unknown))}; "
            "an entry has only 'limiter' and 'key'"
        )
    for field in ("limiter", "key"):
        if field not in spec:
            raise InvalidArgumentError(f"rate limiter #{index} has no {field!r}")
    limiter, key = spec["limiter"], spec["key"]
    if not isinstance(limiter, RateLimiter):
        raise InvalidArgumentError(
            f"rate limiter #{index}: {limiter!r} is not a RateLimiter "
            "(it needs async check_limit(key, cost) and reserve(key, cost))"
        )
    if isinstance(key, str):
        if key not in DIMENSIONS:
            guess = closest(key, DIMENSIONS)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise InvalidArgumentError(
                f"rate limiter #{index} key {key!r} is not a request dimension (use one of "
                f"{', '.join(map(repr, DIMENSIONS))}, or a function of the request){hint}"
            )
    elif not callable(key):
        raise InvalidArgumentError(
            f"rate limiter #{index} key must be a dimension name or a function of the "
            f"request, got {key!r}"
        )
    return limiter, key
