"""JobRetry: the backoff every queue backend and worker agrees on."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectra_core import InvalidArgumentError
from spectra_core.workers import JobRetry


def test_exponential_backoff_capped() -> None:
    retry = JobRetry(wait_initial=1.0, wait_exp_base=2.0, wait_max=5.0)
    assert [retry.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_explicit_schedule_repeats_its_last_wait() -> None:
    retry = JobRetry(schedule=[0.5, 10, 60])
    assert [retry.backoff(n) for n in range(1, 6)] == [0.5, 10.0, 60.0, 60.0, 60.0]


def test_gives_up_at_max_attempts() -> None:
    retry = JobRetry(max_attempts=3)
    assert [retry.gives_up(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"wait_initial": -1}, "wait_initial"),
        ({"wait_max": -1}, "wait_max"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
        ({"schedule": []}, "schedule"),
        ({"schedule": [1, -1]}, "schedule"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        JobRetry(**kwargs)


@given(
    initial=st.floats(0, 100),
    base=st.floats(1, 10),
    cap=st.floats(0, 1000),
    failures=st.integers(-5, 10_000),
)
def test_backoff_is_never_negative_nor_above_the_cap(
    initial: float, base: float, cap: float, failures: int
) -> None:
    retry = JobRetry(wait_initial=initial, wait_exp_base=base, wait_max=cap)
    wait = retry.backoff(failures)
    assert 0.0 <= wait <= cap
