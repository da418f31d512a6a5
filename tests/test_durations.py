import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectra_core import InvalidArgumentError
from spectra_core.durations import MAX_DURATION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        (2, 2),
        (1.5, 1.5),
        ("10", 10),
        (" 2 s ", 2),
    ],
)
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30 seconds", "", "-1s", -3, True, None, "1h30m", [1]])
def test_parse_rejects_with_an_example(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (90, "90s"), (300, "5m"), (7200, "2h"), (86400, "1d")]
)
def test_format_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        -0.5,
        pytest.param(10**400, id="10**400"),
        pytest.param("9" * 400, id="400 nines"),
        pytest.param("9" * 400 + "d", id="400 nines d"),
        1e300,
        "3650000d",
    ],
)
def test_parse_refuses_nan_infinite_negative_and_huge(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="duration") as info:
        parse_duration(bad)
    assert len(str(info.value)) < 200  # the value is shortened, the message stays one line


def test_the_longest_duration_is_accepted() -> None:
    assert parse_duration(MAX_DURATION) == MAX_DURATION
    assert parse_duration("36500d") == 36500 * 86400.0


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=30))
def test_parse_returns_a_bounded_finite_duration_or_refuses(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except InvalidArgumentError as exc:
        message = str(exc)
    else:
        assert math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION
        return
    assert "duration" in message
