import datetime as dt

import pytest

from services.errors import IINBirthDateMismatch, InvalidEmail, InvalidIIN, InvalidPhone
from services.validation import (
    iin_birth_date,
    iin_check_digit,
    make_iin,
    mask_email,
    mask_iin,
    mask_phone,
    normalise_email,
    normalise_phone,
    validate_iin,
)


def test_valid_iin_passes_and_encodes_the_birth_date() -> None:
    iin = make_iin(dt.date(2022, 11, 30), 42, female=True)
    assert validate_iin(iin) == iin
    assert iin[6] == "6"  # born in the 2000s, a girl
    assert iin_birth_date(iin) == dt.date(2022, 11, 30)
    assert validate_iin(f"{iin[:6]} {iin[6:]}", dt.date(2022, 11, 30)) == iin


def test_known_real_format_iin() -> None:
    # 900101 3 0001 ?: computed by hand with weights 1..11 -> check digit
    digits = "90010130001"
    total = sum(int(d) * w for d, w in zip(digits, range(1, 12), strict=True)) % 11
    assert iin_check_digit(digits) == total
    assert validate_iin(digits + str(total)) == digits + str(total)


def test_second_weight_row_is_used_when_the_first_gives_ten() -> None:
    # find a prefix whose first checksum is 10 and check the second row decides
    for serial in range(10000):
        head = f"2103045{serial:04d}"
        first = sum(int(d) * w for d, w in zip(head, range(1, 12), strict=True)) % 11
        if first == 10:
            second = sum(int(d) * w for d, w in zip(head, (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2), strict=True)) % 11
            assert iin_check_digit(head) == (None if second == 10 else second)
            if second != 10:
                assert validate_iin(head + str(second))
            break
    else:  # pragma: no cover
        pytest.fail("no prefix with a first checksum of 10")


@pytest.mark.parametrize("bad", ["", "123", "12345678901a", "1234567890123", "210304501236"])
def test_bad_iins_are_refused(bad: str) -> None:
    with pytest.raises(InvalidIIN):
        validate_iin(bad)


def test_iin_with_impossible_date_or_century_is_refused() -> None:
    head = "211304500001"  # month 13
    with pytest.raises(InvalidIIN):
        validate_iin(head[:11] + str(iin_check_digit(head[:11]) or 0))
    head = "21030490001"  # century digit 9
    check = iin_check_digit(head)
    with pytest.raises(InvalidIIN):
        validate_iin(head + str(check if check is not None else 0))


def test_iin_must_match_the_stated_birth_date() -> None:
    iin = make_iin(dt.date(2021, 3, 4), 7)
    with pytest.raises(IINBirthDateMismatch):
        validate_iin(iin, dt.date(2021, 3, 5))


@pytest.mark.parametrize("raw", ["+7 701 123 45 67", "87011234567", "77011234567", "7011234567",
                                 "8 (701) 123-45-67"])
def test_phones_are_normalised(raw: str) -> None:
    assert normalise_phone(raw) == "+77011234567"


@pytest.mark.parametrize("raw", ["", "12345", "+1 202 555 0100", "8701123456", "+7 701 ABC 45 67",
                                 "+7 (301) 123 45 67", "8701123456789"])
def test_bad_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)


def test_emails() -> None:
    assert normalise_email(" Aigerim.N@Mail.KZ ") == "Aigerim.N@mail.kz"
    for bad in ("", "no-at-sign", "a@", "@b.kz", "a b@c.kz", "a@b"):
        with pytest.raises(InvalidEmail):
            normalise_email(bad)


def test_masks_hide_personal_data() -> None:
    assert mask_iin("210304501235") == "21••••••••35"
    assert "1234" not in mask_phone("+77011234567")
    assert mask_email("aigerim@mail.kz") == "a•••@mail.kz"
