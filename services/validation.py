"""Validation and normalisation of the personal data an application carries."""

from __future__ import annotations

import datetime as dt
import re

from email_validator import EmailNotValidError, validate_email

from services.errors import IINBirthDateMismatch, InvalidEmail, InvalidIIN, InvalidPhone

_W1 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
_W2 = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
# 7th digit: century and sex (1/2: 1800s, 3/4: 1900s, 5/6: 2000s).
_CENTURY = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}


def iin_check_digit(first11: str) -> int | None:
    """The official ИИН check digit of the first 11 digits, or None when no digit is valid."""
    digits = [int(c) for c in first11]
    c = sum(d * w for d, w in zip(digits, _W1, strict=True)) % 11
    if c == 10:
        c = sum(d * w for d, w in zip(digits, _W2, strict=True)) % 11
        if c == 10:
            return None
    return c


def iin_birth_date(iin: str) -> dt.date:
    century = _CENTURY.get(iin[6])
    if century is None:
        raise InvalidIIN(reason="century")
    try:
        return dt.date(century + int(iin[0:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        raise InvalidIIN(reason="date") from None


def validate_iin(raw: str, birth_date: dt.date | None = None) -> str:
    """Return the 12-digit IIN; raise InvalidIIN (or IINBirthDateMismatch) otherwise."""
    iin = re.sub(r"[\s-]", "", str(raw or ""))
    if not re.fullmatch(r"\d{12}", iin):
        raise InvalidIIN(reason="format")
    check = iin_check_digit(iin[:11])
    if check is None or check != int(iin[11]):
        raise InvalidIIN(reason="checksum")
    encoded = iin_birth_date(iin)
    if birth_date is not None and encoded != birth_date:
        raise IINBirthDateMismatch(iin_date=encoded.isoformat(), birth_date=birth_date.isoformat())
    return iin


def make_iin(birth_date: dt.date, serial: int, female: bool = False) -> str:
    """Build a valid IIN for a child born on ``birth_date`` (demo data, tests, the benchmark)."""
    century = (birth_date.year // 100) * 100
    code = {1800: 1, 1900: 3, 2000: 5}[century] + (1 if female else 0)
    while True:
        head = f"{birth_date:%y%m%d}{code}{serial % 10000:04d}"
        check = iin_check_digit(head)
        if check is not None:
            return head + str(check)
        serial += 1


def normalise_phone(raw: str) -> str:
    """A Kazakhstan mobile number as +7XXXXXXXXXX (accepts 8…, 7…, +7…, spaces, dashes, brackets)."""
    text = str(raw or "").strip()
    if not re.fullmatch(r"\+?[\d\s\-()]+", text):
        raise InvalidPhone()
    digits = re.sub(r"\D", "", text)
    if len(digits) == 11 and digits[0] in "78":
        digits = digits[1:]
    elif len(digits) != 10:
        raise InvalidPhone()
    if digits[0] != "7":  # mobile numbers of Kazakhstan are 7xx xxx xx xx
        raise InvalidPhone()
    return "+7" + digits


def normalise_email(raw: str) -> str:
    try:
        info = validate_email(str(raw or "").strip(), check_deliverability=False)
    except EmailNotValidError:
        raise InvalidEmail() from None
    return info.normalized


def mask_iin(iin: str) -> str:
    return iin[:2] + "•" * 8 + iin[-2:] if len(iin) == 12 else "•" * len(iin)


def initials(name: str) -> str:
    """A person's initials, as the public referral page shows a child: «Абенова Айсулу» → «А. А.»
    (at most three, letters only; empty for a name without letters)."""
    letters = [next((c for c in word if c.isalpha()), "") for word in name.split()]
    return " ".join(f"{c.upper()}." for c in letters if c)[:12]


def mask_phone(phone: str) -> str:
    return phone[:4] + "•••••" + phone[-2:] if len(phone) > 6 else "•" * len(phone)


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return (local[:1] + "•••@" + domain) if domain else "•••"
