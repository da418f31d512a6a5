"""spectra_core.store: the filter, cursors, paging helpers and the SQL of one page."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra_core.errors import InvalidArgumentError
from spectra_core.store import (
    SessionFilter,
    SessionInfo,
    SessionPage,
    cut_page,
    decode_cursor,
    encode_cursor,
    epoch_micros,
    keyset_sql,
    page_of,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _info(i: int, minutes: int, user: str | None, tenant: str | None) -> SessionInfo:
    moment = T0 + timedelta(minutes=minutes)
    return SessionInfo(
        id=f"s{i:03d}", user_id=user, tenant_id=tenant, created_at=T0, updated_at=moment
    )


infos = st.lists(
    st.builds(
        _info,
        st.integers(0, 999),
        st.integers(0, 20),
        st.sampled_from([None, "u1", "u2"]),
        st.sampled_from([None, "t1"]),
    ),
    max_size=25,
    unique_by=lambda i: i.id,
)
moments = st.none() | st.integers(0, 20).map(lambda m: T0 + timedelta(minutes=m))
filters = st.builds(
    SessionFilter,
    user_id=st.sampled_from([None, "u1", "u2"]),
    tenant_id=st.sampled_from([None, "t1"]),
    updated_after=moments,
    updated_before=moments,
    limit=st.integers(1, 6),
)


def test_filter_refuses_a_limit_below_one() -> None:
    with pytest.raises(InvalidArgumentError, match="limit"):
        SessionFilter(limit=0)


def test_naive_datetimes_count_as_utc() -> None:
    naive = datetime(2026, 1, 1, 12)
    flt = SessionFilter(updated_after=naive, updated_before=naive)
    assert flt.updated_after == flt.updated_before == naive.replace(tzinfo=UTC)
    assert epoch_micros(naive) == epoch_micros(naive.replace(tzinfo=UTC))


def test_cursor_round_trips_and_a_bad_one_is_refused() -> None:
    info = _info(7, 3, None, None)
    assert decode_cursor(encode_cursor(info)) == (info.updated_at, info.id)
    for bad in ("not a cursor!", "e30", ""):
        with pytest.raises(InvalidArgumentError, match="cursor"):
            decode_cursor(bad)


def _all_pages(flt: SessionFilter, page: Callable[[SessionFilter], SessionPage]) -> list[str]:
    """Every id ``page`` returns, following the cursors from the first page to the last."""
    seen: list[str] = []
    cursor = None
    while True:
        current = page(attrs.evolve(flt, cursor=cursor))
        seen.extend(i.id for i in current)
        if (cursor := current.next_cursor) is None:
            return seen


@settings(max_examples=60, deadline=None)
@given(infos, filters)
def test_keyset_sql_pages_like_the_in_memory_reference(
    rows: list[SessionInfo], flt: SessionFilter
) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE s (id TEXT, user_id TEXT, tenant_id TEXT, updated_us INTEGER)")
    db.executemany(
        "INSERT INTO s VALUES (?, ?, ?, ?)",
        [(i.id, i.user_id, i.tenant_id, epoch_micros(i.updated_at)) for i in rows],
    )
    by_id = {i.id: i for i in rows}

    def sql_page(f: SessionFilter) -> SessionPage:
        clauses, params = keyset_sql(f)
        found = db.execute("SELECT id FROM s" + clauses, params).fetchall()
        return cut_page([by_id[r[0]] for r in found], f)

    expected = sorted((i for i in rows if flt.matches(i)), key=lambda i: i.sort_key, reverse=True)
    assert _all_pages(flt, sql_page) == [i.id for i in expected]
    assert _all_pages(flt, lambda f: page_of(rows, f)) == [i.id for i in expected]


@given(filters, st.integers(1, 5))
def test_placeholder_styles_write_the_same_query(flt: SessionFilter, first: int) -> None:
    flt = attrs.evolve(flt, cursor=encode_cursor(_info(1, 2, None, None)))
    qmark, params = keyset_sql(flt)
    numbered, numbered_params = keyset_sql(flt, placeholder="$1", first=first)
    pyformat, pyformat_params = keyset_sql(flt, placeholder="%s")
    assert params == numbered_params == pyformat_params
    numbers = [int(n) for n in re.findall(r"\$(\d+)", numbered)]
    assert numbers == list(range(first, first + len(params)))
    assert re.sub(r"\$\d+", "?", numbered) == qmark == pyformat.replace("%s", "?")


def test_unknown_placeholder_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="placeholder"):
        keyset_sql(SessionFilter(), placeholder=":1")  # type: ignore[arg-type]
