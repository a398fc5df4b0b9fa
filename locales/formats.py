"""Dates, times, deadlines, numbers and sizes as a reader of ``lang`` writes them (Babel's CLDR
patterns), always in Kazakhstan's time (Asia/Almaty, UTC+5 since 2024-03-01).

    format_date(lang, d, format="long") -> str
    format_datetime(lang, moment, date_format="long", time_format="short", zone=None) -> str
    format_deadline(lang, moment, zone=None) -> str    (an exclusive local-midnight end shows as 23:59)
    zone_text(lang, zone) -> str            ('local': "(по времени Астаны)", 'utc': "(…, UTC+5)")
    ZoneOnce(zone)                          (a message's deadlines: the zone after the first only)
    format_number(lang, number) -> str
    format_size(lang, size) -> str
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers

from locales import N_, gettext, normalize_language


def _almaty() -> ZoneInfo:
    # From the ``tzdata`` package, not the OS: old system tzdata still says UTC+6, while
    # Kazakhstan has been on UTC+5 since 2024-03-01 (services.calendar.ALMATY reads it the same way).
    ref = importlib.resources.files("tzdata.zoneinfo").joinpath("Asia/Almaty")
    with ref.open("rb") as fh:
        return ZoneInfo.from_file(fh, key="Asia/Almaty")


ALMATY = _almaty()


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
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# A formal document's long date (the referral PDF): the official Kazakh "2026 жылғы 5 желтоқсан"
# in place of CLDR's "2026 ж. 5 желтоқсан", which is fine in a chat. Russian's long date
# ("5 декабря 2026 г.") is already the formal one.
FORMAL_LONG: dict[str, str] = {"kk": "y 'жылғы' d MMMM"}


def _date_pattern(code: str, format: str, formal: bool) -> str:
    return FORMAL_LONG.get(code, format) if formal and format == "long" else format


def format_date(lang: str | None, d: dt.date | dt.datetime, format: str = "long", *,
                formal: bool = False) -> str:
    """A date in the language's CLDR pattern ('short' | 'medium' | 'long' | 'full' or a pattern);
    ``formal``: a document's long date (``FORMAL_LONG``).

    A datetime is first moved to Asia/Almaty, so it shows the local calendar day."""
    if isinstance(d, dt.datetime):
        d = _aware(d).astimezone(ALMATY).date()
    code = normalize_language(lang)
    return _format_day(code, d, _date_pattern(code, format, formal))


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


def format_datetime(lang: str | None, moment: dt.datetime,
                    date_format: Literal["full", "long", "medium", "short"] = "long",
                    time_format: str = "short", zone: str | None = None, *, formal: bool = False) -> str:
    """A moment in Asia/Almaty time: e.g. '17 мая 2024 г., 09:30' / '2024 ж. 17 мамыр, 09:30';
    with ``zone`` ('local' | 'utc') followed by the zone (``zone_text``); ``formal`` as in
    ``format_date``."""
    locale = _locale(lang)
    local = _aware(moment).astimezone(ALMATY)
    date_part = format_date(lang, local.date(), date_format, formal=formal)
    time_part = babel_dates.format_time(local, time_format, tzinfo=ALMATY, locale=locale)
    pattern = str(babel_dates.get_datetime_format(date_format, locale=locale))  # ("{1}, {0}": typed as a pattern)
    text = pattern.replace("'", "").replace("{1}", date_part).replace("{0}", time_part)
    return f"{text} {zone_text(lang, zone)}" if zone else text


def format_deadline(lang: str | None, moment: dt.datetime, zone: str | None = None, *,
                    formal: bool = False) -> str:
    """A deadline kept as an exclusive instant: local midnight shows as 23:59 of the day before."""
    local = _aware(moment).astimezone(ALMATY)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        local -= dt.timedelta(minutes=1)
    return format_datetime(lang, local, zone=zone, formal=formal)


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


def format_size(lang: str | None, size: int) -> str:
    """A file size: kilobytes below a megabyte, else megabytes with one decimal."""
    if size < 1024 * 1024:
        return gettext(lang, "{size} KB", size=format_number(lang, max(1, round(size / 1024))))
    return gettext(lang, "{size} MB", size=babel_numbers.format_decimal(round(size / (1024 * 1024), 1),
                                                                       format="#,##0.0", locale=_locale(lang)))
