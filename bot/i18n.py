"""Localization of what the front ends show: domain errors, queue moves, states, dates.

Catalogs live in ``locales/{ru,kk}/LC_MESSAGES/kezek.po``, the package ``locales`` (its ``.po``
files are package data: the wheel carries them). No ``.mo`` file is built or committed: the first
use of a language compiles its ``.po`` in memory (Babel ``read_po`` + ``write_mo``).
Every msgid is English source text; module-level tables mark theirs with the no-op ``N_`` /
``NP_`` markers so ``pybabel extract`` finds them (see ``locales/README.md`` for the commands).

Public API::

    normalize_language(lang) -> 'ru' | 'kk'
    translator(lang) -> babel.support.Translations
    compile_catalog(lang) -> bytes          (the .mo bytes; reload_catalogs() forgets the cache)
    gettext(lang, msgid, **params) -> str
    ngettext(lang, singular, plural, n, **params) -> str
    field_text(lang, field) -> str
    error_text(lang, exc) -> str
    error_lines(lang, exc, *, first_row=1) -> list[str]
    has_error_message(code) -> bool
    cause_text(lang, cause, count) -> str
    status_text(lang, status, until=None) -> str
    privilege_text(lang, privilege) -> str
    language_name(lang, code) -> str
    format_date(lang, d, format="long") -> str
    format_datetime(lang, moment, date_format="long", time_format="short", zone=None) -> str
    format_deadline(lang, moment, zone=None) -> str    (an exclusive local-midnight end shows as 23:59)
    zone_text(lang, zone) -> str            ('local': "(по времени Астаны)", 'utc': "(…, UTC+5)")
    ZoneOnce(zone)                          (a message's deadlines: the zone after the first only)
    format_number(lang, number) -> str
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import io
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from services.calendar import ALMATY
from services.errors import KezekError

DOMAIN = "kezek"


def _locales_dir() -> Path:
    """The folder of the ``locales`` package (an installed wheel's, or the checkout's on the path),
    else the checkout's ``locales/`` next to ``bot/`` (an editable install made before ``locales``
    became a package)."""
    try:
        found = Path(str(importlib.resources.files("locales")))
    except (ModuleNotFoundError, TypeError):
        found = None
    if found is not None and (found / "ru" / "LC_MESSAGES" / f"{DOMAIN}.po").is_file():
        return found
    return Path(__file__).resolve().parent.parent / "locales"


LOCALES_DIR = _locales_dir()
LANGUAGES: tuple[str, ...] = ("ru", "kk")
DEFAULT_LANGUAGE = "ru"
_ALIASES = {"kz": "kk"}  # some clients report Kazakh as "kz"


def N_(message: str) -> str:
    """Mark a module-level string for extraction; it is translated where it is shown."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a module-level plural pair for extraction."""
    return singular, plural


# --- catalogs ------------------------------------------------------------------------------------

_cache: dict[str, Translations] = {}
_lock = threading.RLock()


def normalize_language(lang: str | None) -> str:
    """'ru', 'kk' (also 'kk-KZ', 'ru_RU', 'kz'); anything else is the default, 'ru'."""
    code = (lang or "").strip().replace("_", "-").split("-")[0].lower()
    code = _ALIASES.get(code, code)
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def po_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(lang: str) -> bytes:
    """The .mo bytes of a language's .po (fuzzy entries left out, like ``pybabel compile``)."""
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def translator(lang: str | None) -> Translations:
    """The compiled catalog of ``lang`` ('ru' | 'kk'; anything else gives 'ru').

    A Kazakh message missing from the Kazakh catalog falls back to Russian, not English."""
    code = normalize_language(lang)
    cached = _cache.get(code)
    if cached is not None:
        return cached
    with _lock:
        if code not in _cache:
            translations = Translations(fp=io.BytesIO(compile_catalog(code)), domain=DOMAIN)
            if code != DEFAULT_LANGUAGE:
                translations.add_fallback(translator(DEFAULT_LANGUAGE))
            _cache[code] = translations
        return _cache[code]


def reload_catalogs() -> None:
    """Forget compiled catalogs (after editing a .po file in a running process)."""
    with _lock:
        _cache.clear()


_DOUBLE_DOT = re.compile(r"(?<!\.)\.\.(?!\.)")


def _format(template: str, source: str, params: Mapping[str, Any]) -> str:
    if not params:
        return template
    try:
        text = template.format(**params)
    except (KeyError, IndexError, ValueError, TypeError):
        # A broken translation must not break a reply: fall back to the source text.
        try:
            text = source.format(**params)
        except (KeyError, IndexError, ValueError, TypeError):
            return template
    # A value ending in an abbreviation ('2024 г.') at the end of a sentence: one full stop.
    return _DOUBLE_DOT.sub(".", text)


def gettext(lang: str | None, msgid: str, **params: Any) -> str:
    """Translate ``msgid`` and fill its ``{placeholders}`` with ``params`` (str.format)."""
    return _format(translator(lang).gettext(msgid), msgid, params)


def ngettext(lang: str | None, singular: str, plural: str, n: int, **params: Any) -> str:
    """Plural-aware translation; ``{count}`` is ``n`` unless given."""
    params.setdefault("count", n)
    source = singular if n == 1 else plural
    return _format(translator(lang).ngettext(singular, plural, n), source, params)


# --- formatting ----------------------------------------------------------------------------------

def _locale(lang: str | None) -> Locale:
    return _parsed_locale(normalize_language(lang))


# Formatting is pure and every screen repeats it: Babel parses the CLDR pattern on each call,
# which was a tenth of a /status reply's CPU. Bounded caches of the results.
@functools.lru_cache(maxsize=8)
def _parsed_locale(code: str) -> Locale:
    return Locale.parse(code)


@functools.lru_cache(maxsize=4096)
def _format_day(code: str, day: dt.date, format: str) -> str:
    return babel_dates.format_date(day, format, locale=_parsed_locale(code))


@functools.lru_cache(maxsize=8192)
def _format_int(code: str, number: int) -> str:
    return babel_numbers.format_decimal(number, locale=_parsed_locale(code))


def _aware(moment: dt.datetime) -> dt.datetime:
    # The storage layer hands out aware UTC datetimes; a naive one is taken as UTC too.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def format_date(lang: str | None, d: dt.date | dt.datetime, format: str = "long") -> str:
    """A date in the language's CLDR pattern ('short' | 'medium' | 'long' | 'full' or a pattern).

    A datetime is first moved to Asia/Almaty, so it shows the local calendar day."""
    if isinstance(d, dt.datetime):
        d = _aware(d).astimezone(ALMATY).date()
    return _format_day(normalize_language(lang), d, format)


# The zone after a time: 'local' in Telegram and the CLI, 'utc' (with the offset) in what may be
# read abroad: the e-mail copies and the referral PDF (some time-zone lists still give Astana
# UTC+6). Since 2024-03-01 all Kazakhstan is UTC+5; official texts say "по времени Астаны".
ZONES: dict[str, str] = {
    "local": N_("(Astana time)"),
    "utc": N_("(Astana time, UTC+5)"),
}


def zone_text(lang: str | None, zone: str = "local") -> str:
    return gettext(lang, ZONES[zone])


class ZoneOnce:
    """The deadlines of one message: the zone is said after the first one only."""

    def __init__(self, zone: str | None = "local") -> None:
        self.zone = zone

    def take(self) -> str | None:
        zone, self.zone = self.zone, None
        return zone


def format_datetime(lang: str | None, moment: dt.datetime, date_format: str = "long",
                    time_format: str = "short", zone: str | None = None) -> str:
    """A moment in Asia/Almaty time: e.g. '17 мая 2024 г., 09:30' / '2024 ж. 17 мамыр, 09:30';
    with ``zone`` ('local' | 'utc') followed by the zone (``zone_text``)."""
    locale = _locale(lang)
    local = _aware(moment).astimezone(ALMATY)
    date_part = babel_dates.format_date(local.date(), date_format, locale=locale)
    time_part = babel_dates.format_time(local, time_format, tzinfo=ALMATY, locale=locale)
    pattern = babel_dates.get_datetime_format(date_format, locale=locale)
    text = pattern.replace("'", "").replace("{1}", date_part).replace("{0}", time_part)
    return f"{text} {zone_text(lang, zone)}" if zone else text


def format_deadline(lang: str | None, moment: dt.datetime, zone: str | None = None) -> str:
    """A deadline kept as an exclusive instant: local midnight shows as 23:59 of the day before."""
    local = _aware(moment).astimezone(ALMATY)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        local -= dt.timedelta(minutes=1)
    return format_datetime(lang, local, zone=zone)


def format_number(lang: str | None, number: int | float) -> str:
    if isinstance(number, int) and not isinstance(number, bool):
        return _format_int(normalize_language(lang), number)
    return babel_numbers.format_decimal(number, locale=_locale(lang))


def parse_moment(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


# (an error is one message with one moment: it says its zone)
def _param_deadline(lang: str, value: Any) -> str:
    moment = parse_moment(value)
    return format_deadline(lang, moment, zone="local") if moment is not None else str(value)


def _param_moment(lang: str, value: Any) -> str:
    moment = parse_moment(value)
    return format_datetime(lang, moment, zone="local") if moment is not None else str(value)


def _param_date(lang: str, value: Any) -> str:
    if isinstance(value, dt.date):
        return format_date(lang, value)
    try:
        return format_date(lang, dt.date.fromisoformat(str(value)))
    except ValueError:
        return str(value)


# --- vocabularies --------------------------------------------------------------------------------

# Field names of registry input (services/parsing.py callers), shown inside error messages.
# Translators: these are inserted into sentences like 'The field «{field}» …'; use lower case.
FIELD_NAMES: dict[str, str] = {
    "*": N_("record"),
    "number": N_("application number"),
    "child_iin": N_("child's IIN"),
    "child_name": N_("child's full name"),
    "birth_date": N_("date of birth"),
    "birth_year": N_("year of birth"),
    "phone": N_("mobile phone"),
    "email": N_("e-mail"),
    "day": N_("date"),
    "working": N_("working day"),
    "decision": N_("decision"),
    "advance": N_("clock shift"),
    "set": N_("new clock time"),
    "token": N_("verification code"),
    "submitted_at": N_("submission time"),
    "district": N_("district"),
    "kindergarten": N_("kindergarten"),
    "preferred_kindergartens": N_("preferred kindergartens"),
    "privilege": N_("privilege"),
    "language": N_("language of instruction"),
    "languages": N_("languages of instruction"),
    "count": N_("number of seats"),
    "code": N_("code"),
    "name": N_("name"),
    "name_ru": N_("name in Russian"),
    "name_kk": N_("name in Kazakh"),
    "address": N_("address"),
    "kind": N_("kindergarten type"),
    "twin_group": N_("twin group"),
    "profile": N_("rule profile"),
    "window_open": N_("claim window opening time"),
    "window_close": N_("claim window closing time"),
    "twins_together": N_("offer twins together"),
    "offer_windows": N_("offer lifetime, in claim windows"),
    "showup_working_days": N_("show-up period, in working days"),
    "stoplist_working_days": N_("stop-list period, in working days"),
    "removal_on_annulment": N_("annulments before removal from the queue"),
    "docs_working_days": N_("privilege documents period, in working days"),
    "docs_calendar_days": N_("privilege documents limit, in calendar days"),
    "private_min_age_years": N_("minimum age for private kindergartens, in years"),
    "interleave_general_per_first": N_("general referrals after each first-priority one"),
    "status": N_("status"),
    "referral": N_("referral"),
    "reason": N_("rejection reason"),
    "note": N_("operator's note"),
}

LANGUAGE_NAMES: dict[str, str] = {
    "ru": N_("Russian"),
    "kk": N_("Kazakh"),
}

PRIVILEGES: dict[str, str] = {
    "out_of_turn": N_("Out-of-turn right"),
    "first": N_("First-priority right"),
    "none": N_("General queue"),
}

STATUSES: dict[str, str] = {
    "waiting": N_("Waiting in the queue"),
    "queued": N_("Waiting in the queue"),
    "stop_listed": N_("On the stop-list"),
    "offer_open": N_("A seat is offered"),
    "referred": N_("Referral issued"),
    "admitted": N_("Admitted to the kindergarten"),
    "removed": N_("Removed from the queue"),
    "withdrawn": N_("Application withdrawn"),
}

STATUSES_UNTIL: dict[str, str] = {
    "stop_listed": N_("On the stop-list until {until}"),
    "offer_open": N_("A seat is offered: claim it by {until}"),
    "referred": N_("Referral issued, valid until {until}"),
}

# Queue-move causes (services.queue): "count" applications/children caused the move.
CAUSES: dict[str, tuple[str, str]] = {
    "arrival": NP_("{count} new application was placed ahead of you",
                   "{count} new applications were placed ahead of you"),
    "referral": NP_("{count} referral was issued ahead of you",
                    "{count} referrals were issued ahead of you"),
    "returned": NP_("{count} child whose referral was annulled returned to the queue ahead of you",
                    "{count} children whose referrals were annulled returned to the queue ahead of you"),
    "privilege_dropped": NP_("{count} child lost a privilege and moved to the general queue",
                             "{count} children lost a privilege and moved to the general queue"),
    "changed": NP_("The registry changed the data of {count} application in the queue",
                   "The registry changed the data of {count} applications in the queue"),
    "withdrawn": NP_("{count} application was withdrawn from the queue",
                     "{count} applications were withdrawn from the queue"),
}
OTHER_CAUSE = NP_("{count} other change in the queue", "{count} other changes in the queue")


def _named(lang: str | None, names: dict[str, str], key: str) -> str:
    """The localized name of ``key`` in ``names``; a key it does not know is shown as it is."""
    msgid = names.get(key)
    return gettext(lang, msgid) if msgid else key


def field_text(lang: str | None, field: str) -> str:
    """The localized name of an input field; an unknown field is shown as it is."""
    return _named(lang, FIELD_NAMES, field)


def language_name(lang: str | None, code: str) -> str:
    return _named(lang, LANGUAGE_NAMES, code)


DOCUMENT_STATUSES: dict[str, str] = {
    "pending": N_("waiting for a decision"),
    "accepted": N_("accepted"),
    "rejected": N_("rejected"),
    "closed": N_("closed without a decision"),
}

DOCUMENT_TYPES: dict[str, str] = {
    "image/jpeg": N_("JPEG image"),
    "image/png": N_("PNG image"),
    "application/pdf": N_("PDF file"),
}


def document_status_text(lang: str | None, status: str) -> str:
    return _named(lang, DOCUMENT_STATUSES, status)


def document_type_text(lang: str | None, mime: str) -> str:
    return _named(lang, DOCUMENT_TYPES, mime)


def format_size(lang: str | None, size: int) -> str:
    """A file size: kilobytes below a megabyte, else megabytes with one decimal."""
    if size < 1024 * 1024:
        return gettext(lang, "{size} KB", size=format_number(lang, max(1, round(size / 1024))))
    return gettext(lang, "{size} MB", size=babel_numbers.format_decimal(round(size / (1024 * 1024), 1),
                                                                       format="#,##0.0", locale=_locale(lang)))


def privilege_text(lang: str | None, privilege: str | None) -> str:
    msgid = PRIVILEGES.get(privilege or "none")
    if msgid is None:
        return gettext(lang, "Unknown privilege ({privilege})", privilege=privilege)
    return gettext(lang, msgid)


def status_text(lang: str | None, status: str, until: dt.datetime | None = None,
                zone: str | None = None) -> str:
    """An application's state: waiting (= queued), stop_listed, offer_open, referred, admitted,
    removed, withdrawn; with ``until`` the stop-list / offer / referral shows its end (and
    ``zone``, see format_datetime)."""
    if until is not None and status in STATUSES_UNTIL:
        return gettext(lang, STATUSES_UNTIL[status], until=format_deadline(lang, until, zone=zone))
    msgid = STATUSES.get(status)
    if msgid is None:
        return gettext(lang, "Unknown status ({status})", status=status)
    return gettext(lang, msgid)


def cause_text(lang: str | None, cause: str, count: int) -> str:
    """Why a queue number moved, e.g. '2 referrals were issued ahead of you' (plural-aware).

    ``count`` is the signed move a cause made (referrals ahead move a number by -1 each); the
    sentence already says the direction, so it shows how many."""
    singular, plural = CAUSES.get(cause, OTHER_CAUSE)
    n = abs(count)
    return ngettext(lang, singular, plural, n, count=format_number(lang, n))


# --- errors --------------------------------------------------------------------------------------

_Renderer = Callable[[str, dict[str, Any]], str]

# Codes whose message needs no parameters.
ERROR_MESSAGES: dict[str, str] = {
    "error": N_("Something went wrong. Please try again later."),
    "invalid": N_("The data is invalid. Please check it and try again."),
    "invalid_phone": N_("Enter a Kazakhstan mobile number, for example +7 701 234 56 78."),
    "invalid_email": N_("The e-mail address is invalid."),
    "link_failed": N_("The details do not match. Please check them and try again; to start over, "
                      "send /link."),
    "child_already_queued": N_("This child is already in the queue with another application."),
    "not_found": N_("Nothing was found."),
    "application_not_found": N_("The application was not found. Please check the number."),
    "seat_not_found": N_("The seat was not found."),
    "referral_not_found": N_("The referral was not found."),
    "rule_violation": N_("The rules do not allow this action now."),
    "seat_not_available": N_(
        "This seat is no longer available: someone else has taken it, or it is not offered to you."),
    "not_eligible_for_seat": N_(
        "This seat is not for your child: it is in another district or for another year of birth."),
    "confirmation_required": N_("Please confirm that you take this seat."),
}

_INVALID_REASONS: dict[str, str] = {
    "object": N_("Each record must be an object with named fields."),
    "future": N_("The field «{field}» cannot be in the future."),
    "type": N_("The field «{field}» has a value of the wrong type."),
    "characters": N_("The field «{field}» contains forbidden control characters."),
    "code": N_("The field «{field}» must be a code of Latin letters, digits and the signs _ . - /."),
    "choice": N_("The field «{field}» must be one of: {options}."),
    "integer": N_("The field «{field}» must be a whole number."),
    "boolean": N_("The field «{field}» must be yes or no."),
    "date": N_("The field «{field}» must be a date in the form DD.MM.YYYY or YYYY-MM-DD."),
    "datetime": N_("The field «{field}» must be a date and time in ISO 8601 form, "
                   "for example 2024-05-17T10:30."),
    "duplicates": N_("The field «{field}» lists the same code more than once."),
    "too_many": N_("The field «{field}» lists too many codes: at most {max}."),
    "time": N_("The field «{field}» must be a time of day in the form HH:MM."),
    "before_open": N_("The field «{field}» must be later than the claim window opening time."),
    "range": N_("The field «{field}» is outside the allowed range."),
}
_NOT_TAUGHT = N_("The kindergarten does not teach in this language; its languages: {options}.")
_RANGE_MIN_MAX = N_("The field «{field}» must be from {min} to {max}.")
_TOO_LONG = NP_("The field «{field}» is too long: at most {max} character.",
                "The field «{field}» is too long: at most {max} characters.")
_INVALID_OTHER = N_("The field «{field}» is filled in incorrectly.")
_INVALID_NO_FIELD = N_("A field is filled in incorrectly.")

_IIN_REASONS: dict[str, str] = {
    "format": N_("The IIN must consist of 12 digits."),
    "checksum": N_("The IIN has a wrong check digit. Please check it for typos."),
    "century": N_("The 7th digit of the IIN (century of birth and sex) is wrong."),
    "date": N_("The IIN does not contain a valid date of birth."),
}
_IIN_OTHER = N_("The IIN is invalid.")

_NOT_WAITING: dict[str, str] = {
    "referred": N_("The child already holds a referral."),
    "admitted": N_("The child has already been admitted to a kindergarten."),
    "removed": N_("The application has been removed from the queue."),
    "withdrawn": N_("The application has been withdrawn."),
    "changed": N_("The application changed in the meantime. Please try again."),
}
_NOT_WAITING_OTHER = N_("The application is not waiting in the queue.")

_REFERRAL_NOT_ACTIVE: dict[str, str] = {
    "admitted": N_("The child has already been admitted on this referral."),
    "annulled": N_("This referral has been annulled."),
    "changed": N_("The referral changed in the meantime. Please try again."),
}
_REFERRAL_NOT_ACTIVE_OTHER = N_("This referral is no longer active.")

_DOCS_NOT_PENDING: dict[str, str] = {
    "not_required": N_("This referral needs no privilege documents."),
    "accepted": N_("The privilege documents have already been accepted."),
    "rejected": N_("The privilege documents have already been rejected."),
    "missed": N_("The privilege documents were not confirmed in time; the referral was annulled."),
    "deadline_passed": N_("The deadline for the privilege documents has passed."),
}
_DOCS_DEADLINE_AT = N_("The deadline for the privilege documents passed: {due_at}.")
_DOCS_OTHER = N_("No privilege documents are awaited for this referral.")

_CLOSED: dict[str, str] = {
    "admitted": N_("The application is closed: the child has been admitted to a kindergarten."),
    "removed": N_("The application is closed: it was removed from the queue."),
    "withdrawn": N_("The application is closed: it was withdrawn."),
}
_CLOSED_OTHER = N_("The application is closed and can no longer be changed.")

CATCH_ALL = N_("The request could not be completed (error: {code}).")


def _invalid_field(lang: str, params: dict[str, Any]) -> str:
    field = params.get("field")
    reason = params.get("reason")
    values = dict(params)
    if field is not None:
        values["field"] = field_text(lang, str(field))
    if reason == "not_taught" and "options" in params:
        codes = [c.strip() for c in str(params["options"]).split(",") if c.strip()]
        values["options"] = ", ".join(language_name(lang, c) for c in codes)
        return gettext(lang, _NOT_TAUGHT, **values)
    if field is None and reason != "object":
        return gettext(lang, _INVALID_NO_FIELD)
    if reason == "too_long" and "max" in params:
        return ngettext(lang, *_TOO_LONG, int(params["max"]), **values)
    if reason == "range" and "min" in params and "max" in params:
        return gettext(lang, _RANGE_MIN_MAX, **values)
    msgid = _INVALID_REASONS.get(str(reason))
    if msgid is None or ("{options}" in msgid and "options" not in params) or (
            "{max}" in msgid and "max" not in params):
        return gettext(lang, _INVALID_OTHER, **values)
    return gettext(lang, msgid, **values)


def _missing_field(lang: str, params: dict[str, Any]) -> str:
    if params.get("field") is None:
        return gettext(lang, "A required field is empty.")
    return gettext(lang, "The required field «{field}» is empty.",
                   field=field_text(lang, str(params["field"])))


def _invalid_iin(lang: str, params: dict[str, Any]) -> str:
    return gettext(lang, _IIN_REASONS.get(str(params.get("reason")), _IIN_OTHER))


def _iin_birth_date(lang: str, params: dict[str, Any]) -> str:
    if "iin_date" in params and "birth_date" in params:
        return gettext(lang, "By the IIN the child was born on {iin_date}, but the date of birth "
                             "given is {birth_date}.",
                       iin_date=_param_date(lang, params["iin_date"]),
                       birth_date=_param_date(lang, params["birth_date"]))
    return gettext(lang, "The IIN does not match the child's date of birth.")


def _unknown(with_value: str, without: str) -> _Renderer:
    def render(lang: str, params: dict[str, Any]) -> str:
        if params.get("value"):
            return gettext(lang, with_value, value=params["value"])
        return gettext(lang, without)
    return render


def _duplicate(lang: str, params: dict[str, Any]) -> str:
    field = params.get("field")
    if field is None:
        return gettext(lang, "This record occurs more than once in the load.")
    name = field_text(lang, str(field))
    if params.get("value"):
        return gettext(lang, "The value «{value}» of the field «{field}» occurs more than once "
                             "in the load.", field=name, value=params["value"])
    return gettext(lang, "The same value of the field «{field}» occurs more than once in the load.",
                   field=name)


def _bulk(lang: str, params: dict[str, Any]) -> str:
    count = int(params.get("count", 0))
    return ngettext(lang, "The load was rejected and nothing was saved: {count} record has an error.",
                    "The load was rejected and nothing was saved: {count} records have errors.",
                    count, count=format_number(lang, count))


def _outside_window(lang: str, params: dict[str, Any]) -> str:
    if params.get("opens_at"):
        return gettext(lang, "A seat can be claimed only during the claim window of a working day. "
                             "The next window opens: {opens_at}.",
                       opens_at=_param_moment(lang, params["opens_at"]))
    return gettext(lang, "A seat can be claimed only during the claim window of a working day.")


def _offer_expired(lang: str, params: dict[str, Any]) -> str:
    if params.get("expired_at"):
        return gettext(lang, "The offer has expired: {expired_at}.",
                       expired_at=_param_moment(lang, params["expired_at"]))
    return gettext(lang, "The offer has expired.")


def _stop_listed(lang: str, params: dict[str, Any]) -> str:
    if params.get("until"):
        return gettext(lang, "The application is on the stop-list until {until}: until then seats "
                             "are neither offered nor claimed.",
                       until=_param_deadline(lang, params["until"]))
    return gettext(lang, "The application is on the stop-list: seats are neither offered nor claimed.")


def _too_young(lang: str, params: dict[str, Any]) -> str:
    if params.get("min_age") is not None:
        age = int(params["min_age"])
        return ngettext(lang,
                        "Seats in private kindergartens under the state order are for children "
                        "from {min_age} year old.",
                        "Seats in private kindergartens under the state order are for children "
                        "from {min_age} years old.",
                        age, min_age=age)
    return gettext(lang, "The child is too young for a seat in a private kindergarten under the "
                         "state order.")


def _showup_passed(lang: str, params: dict[str, Any]) -> str:
    if params.get("due_at"):
        return gettext(lang, "The deadline to admit the child on this referral has passed: {due_at}.",
                       due_at=_param_deadline(lang, params["due_at"]))
    return gettext(lang, "The deadline to admit the child on this referral has passed.")


def _link_locked(lang: str, params: dict[str, Any]) -> str:
    if not params.get("until"):
        return gettext(lang, "Too many unsuccessful attempts. Linking from this chat is paused for a while.")
    return gettext(lang, "Too many unsuccessful attempts. Linking from this chat is paused until {until}.",
                   until=_param_moment(lang, params["until"]))


def _docs_pending(lang: str, params: dict[str, Any]) -> str:
    if params.get("due_at"):
        return gettext(lang, "The child can be admitted once the privilege documents are confirmed "
                             "(they are due by {due_at}).", due_at=_param_deadline(lang, params["due_at"]))
    return gettext(lang, "The child can be admitted once the privilege documents are confirmed.")


def _by_status(table: dict[str, str], other: str, key: str = "status") -> _Renderer:
    def render(lang: str, params: dict[str, Any]) -> str:
        return gettext(lang, table.get(str(params.get(key)), other))
    return render


def _docs(lang: str, params: dict[str, Any]) -> str:
    state = str(params.get("state"))
    if state == "deadline_passed" and params.get("due_at"):
        return gettext(lang, _DOCS_DEADLINE_AT, due_at=_param_deadline(lang, params["due_at"]))
    return gettext(lang, _DOCS_NOT_PENDING.get(state, _DOCS_OTHER))


_IMAGE_FORMATS = {"heic": "HEIC", "avif": "AVIF", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP"}


def _document_type(lang: str, params: dict[str, Any]) -> str:
    kind = str(params.get("kind"))
    if kind in _IMAGE_FORMATS:
        return gettext(lang, "This is a {format} image, and only JPEG and PNG images and PDF files are accepted. "
                             "Send it as a photo rather than as a file (Telegram converts it), or save it as "
                             "JPEG or PDF.", format=_IMAGE_FORMATS[kind])
    if kind == "zip":
        return gettext(lang, "Word and Excel files and archives are not accepted. Send the documents as a PDF "
                             "file or as photos of the pages.")
    return gettext(lang, "This type of file is not accepted. Send a photo, a JPEG or PNG image, or a PDF file.")


ERROR_RENDERERS: dict[str, _Renderer] = {
    "document_type_refused": _document_type,
    "invalid_field": _invalid_field,
    "missing_field": _missing_field,
    "invalid_iin": _invalid_iin,
    "iin_birth_date_mismatch": _iin_birth_date,
    "unknown_district": _unknown(N_("The district with code «{value}» was not found."),
                                 N_("The district was not found.")),
    "unknown_kindergarten": _unknown(N_("The kindergarten with code «{value}» was not found."),
                                     N_("The kindergarten was not found.")),
    "unknown_profile": _unknown(N_("The rule profile with code «{value}» was not found."),
                                N_("The rule profile was not found.")),
    "duplicate_in_batch": _duplicate,
    "bulk_rejected": _bulk,
    "outside_claim_window": _outside_window,
    "offer_expired": _offer_expired,
    "not_waiting": _by_status(_NOT_WAITING, _NOT_WAITING_OTHER),
    "stop_listed": _stop_listed,
    "too_young_for_private": _too_young,
    "referral_not_active": _by_status(_REFERRAL_NOT_ACTIVE, _REFERRAL_NOT_ACTIVE_OTHER),
    "showup_deadline_passed": _showup_passed,
    "documents_not_pending": _docs,
    "documents_pending": _docs_pending,
    "link_locked": _link_locked,
    "application_closed": _by_status(_CLOSED, _CLOSED_OTHER),
}


def _class_messages() -> dict[str, str]:
    from services.errors import all_error_classes

    return {cls.code: cls.message for cls in all_error_classes() if cls.message}


def has_error_message(code: str) -> bool:
    """True when ``code`` has its own message (error_text does not fall back to the catch-all)."""
    return code in ERROR_RENDERERS or code in ERROR_MESSAGES or code in _class_messages()


def _param_text(lang: str, value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_datetime(lang, value, zone="local")
    if isinstance(value, dt.date):
        return format_date(lang, value)
    return value


def error_text(lang: str | None, exc: KezekError) -> str:
    """A domain error as one sentence for a parent or an operator, in ``lang``."""
    code = str(getattr(exc, "code", "error"))
    params = dict(getattr(exc, "params", None) or {})
    lang = normalize_language(lang)
    renderer = ERROR_RENDERERS.get(code)
    if renderer is not None:
        return renderer(lang, params)
    msgid = ERROR_MESSAGES.get(code)
    if msgid is not None:
        return gettext(lang, msgid)
    msgid = getattr(exc, "message", None)
    if msgid:
        return gettext(lang, msgid, **{k: _param_text(lang, v) for k, v in params.items()})
    return gettext(lang, CATCH_ALL, code=code)


def error_lines(lang: str | None, exc: KezekError, *, first_row: int = 1) -> list[str]:
    """``error_text`` plus, for a rejected bulk load, one line per bad row it lists and one for
    how many more there are.

    Services number rows from 0; ``first_row`` is the number shown for row 0 (e.g. 2 for a CSV
    file whose line 1 is the header)."""
    lines = [error_text(lang, exc)]
    listed = getattr(exc, "errors", None) or []
    for index, error in listed:
        lines.append(gettext(lang, "Row {row}: {error}", row=index + first_row,
                             error=error_text(lang, error)))
    more = int(exc.params.get("count", 0)) - len(listed) if listed else 0
    if more > 0:  # (a bulk rejection lists its first rows and counts the rest)
        lines.append(gettext(lang, "… and more rows with errors: {count}.", count=format_number(lang, more)))
    return lines
