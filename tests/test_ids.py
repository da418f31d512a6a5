import pytest

from spectra_core import InvalidIdError, new_entry_id, new_session_id, validate_id


@pytest.mark.parametrize(
    "bad", ["", "../x", "/etc/passwd", "a/b", "a\\b", "a\x00b", "x" * 300, "..", ".x", "a b", 7]
)
def test_bad_ids_are_rejected_with_a_reason(bad: object) -> None:
    with pytest.raises(InvalidIdError, match="session id"):
        validate_id(bad)


def test_long_id_error_says_the_limit() -> None:
    with pytest.raises(InvalidIdError, match="300 characters long; the maximum is 128"):
        validate_id("x" * 300)


@pytest.mark.parametrize("good", ["a", "A-b_c.d", "0" * 128, "session-2026.11"])
def test_good_ids_pass(good: str) -> None:
    assert validate_id(good) == good


def test_generated_ids_are_valid_and_distinct() -> None:
    ids = {new_session_id() for _ in range(1000)} | {new_entry_id() for _ in range(1000)}
    assert len(ids) == 2000
    for i in ids:
        validate_id(i)
