import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectra_core import InvalidIdError, SessionManager, new_entry_id, new_session_id, validate_id
from spectra_core.ids import MAX_USER_ID_LENGTH, validate_user_id


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


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("ann\x00", r"control character '\\x00' at position 3"),
        ("a\nb", "control character"),
        ("a\x1b[31mb", "control character"),
        ("a\x7fb", "control character"),
        ("\udcff", "not valid Unicode"),
        ("u" * 257, "257 characters long; the maximum is 256"),
        (None, "must be a string, got NoneType"),
        (7, "must be a string, got int"),
    ],
)
def test_bad_user_ids_are_rejected_with_a_reason(bad: object, reason: str) -> None:
    with pytest.raises(InvalidIdError, match=f"user id .*{reason}|user id {reason}"):
        validate_user_id(bad)


@pytest.mark.parametrize(
    "good", ["ann", "ann@example.com", "auth0|5f3a", "Zoë Ō", "tenant:user/7", "u" * 256]
)
def test_good_user_ids_pass(good: str) -> None:
    assert validate_user_id(good) == good


def test_user_id_errors_name_what_was_checked() -> None:
    with pytest.raises(InvalidIdError, match="tenant id must not be empty"):
        validate_user_id("", "tenant id")


@given(st.text(max_size=300))
def test_accepted_user_ids_are_storable_text(value: str) -> None:
    try:
        validate_user_id(value)
    except InvalidIdError:
        return
    value.encode("utf-8")  # never a lone surrogate
    assert "\x00" not in value and 0 < len(value) <= MAX_USER_ID_LENGTH


@pytest.mark.needs_plugins
@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"user_id": "ann\x00"}, "user id contains the control character"),
        ({"tenant_id": "t" * 257}, "tenant id is 257 characters long"),
    ],
)
async def test_manager_create_refuses_a_bad_user_or_tenant_id(
    manager: SessionManager, fields: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidIdError, match=reason):
        await manager.create(**fields)  # type: ignore[arg-type]
    assert list(await manager.list()) == []  # nothing written
