import pytest

from spectra_core.durations import format_duration, parse_duration


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
