"""The working-day calendar of Kazakhstan, in Asia/Almaty, with operator overrides.

* Public holidays, their carry-overs and declared working weekends come from the ``holidays``
  package (KZ); days an operator records (later decrees, the official Kurban Ait date) win.
* A deadline of "N working days after an event" is the end (23:59:59 Almaty) of the N-th working
  day after the event's day. We represent it as the exclusive instant: local midnight after it.
* The claim window is [open, close) local time of a working day.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import re
from collections.abc import Mapping
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

UTC = dt.UTC


def _almaty() -> ZoneInfo:
    # Load the zone from the ``tzdata`` package, not the OS: old system tzdata still says UTC+6,
    # while Kazakhstan has been on UTC+5 since 2024-03-01.
    ref = importlib.resources.files("tzdata.zoneinfo").joinpath("Asia/Almaty")
    with ref.open("rb") as fh:
        return ZoneInfo.from_file(fh, key="Asia/Almaty")


ALMATY = _almaty()

_RU_NAMES = {
    "New Year's Day": "Новый год",
    "Orthodox Christmas": "Православное Рождество",
    "International Women's Day": "Международный женский день",
    "Nowruz Holiday": "Наурыз мейрамы",
    "Kazakhstan's People Solidarity Holiday": "Праздник единства народа Казахстана",
    "Defender of the Fatherland Day": "День защитника Отечества",
    "Victory Day": "День Победы",
    "Capital Day": "День столицы",
    "Eid al-Adha": "Курбан айт",
    "Constitution Day": "День Конституции Республики Казахстан",
    "Republic Day": "День Республики",
    "Independence Day": "День Независимости",
    "Day off": "Выходной день",
}
_RU_SUFFIX = {
    "observed": "перенесённый выходной",
    "estimated": "дата ориентировочная",
}


def _ru_holiday_name(en: str) -> str:
    out = []
    for part in en.split("; "):
        m = re.fullmatch(r"(.*?)(?: \((observed|estimated)\))?", part)
        base, suffix = (m.group(1), m.group(2)) if m else (part, None)
        sub = re.fullmatch(r"Day off \(substituted from (\d\d)/(\d\d)/(\d{4})\)", part)
        if sub:
            out.append(f"Выходной день (перенесён с {sub.group(1)}.{sub.group(2)}.{sub.group(3)})")
            continue
        text = _RU_NAMES.get(base, base)
        if suffix:
            text += f" ({_RU_SUFFIX[suffix]})"
        out.append(text)
    return "; ".join(out)


@lru_cache(maxsize=64)
def _kz_year(year: int, language: str) -> holidays.HolidayBase:
    return holidays.country_holidays("KZ", years=year, language=language)


class WorkingCalendar:
    """Working days of Kazakhstan with operator overrides ``{date: (working, name)}``."""

    def __init__(self, overrides: Mapping[dt.date, tuple[bool, str]] | None = None) -> None:
        self.overrides = dict(overrides or {})

    # --- days -------------------------------------------------------------------------------
    def is_working_day(self, day: dt.date) -> bool:
        if day in self.overrides:
            return self.overrides[day][0]
        kz = _kz_year(day.year, "en_US")
        if day in kz.weekend_workdays:
            return True
        return day.weekday() < 5 and day not in kz

    def holiday_name(self, day: dt.date, lang: str = "ru") -> str | None:
        """The name of a day off (override, holiday or carry-over) in ``ru`` or ``kk``."""
        if day in self.overrides:
            working, name = self.overrides[day]
            return None if working else (name or None)
        if day not in _kz_year(day.year, "en_US"):
            return None
        if lang == "kk":
            return _kz_year(day.year, "kk").get(day)
        return _ru_holiday_name(_kz_year(day.year, "en_US")[day])

    def nth_working_day_after(self, day: dt.date, n: int) -> dt.date:
        """The N-th working day after ``day`` (``day`` itself never counts); n >= 1."""
        if n < 1:
            raise ValueError("n must be at least 1")
        d = day
        left = n
        while left:
            d += dt.timedelta(days=1)
            if self.is_working_day(d):
                left -= 1
        return d

    def next_working_day(self, day: dt.date) -> dt.date:
        return self.nth_working_day_after(day, 1)

    # --- instants ---------------------------------------------------------------------------
    @staticmethod
    def local(moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ALMATY)

    @staticmethod
    def local_date(moment: dt.datetime) -> dt.date:
        return moment.astimezone(ALMATY).date()

    @staticmethod
    def at_local(day: dt.date, minute: int = 0) -> dt.datetime:
        """The UTC instant of local ``day`` at ``minute`` past midnight (24:00 allowed)."""
        local = dt.datetime.combine(day, dt.time(0), tzinfo=ALMATY) + dt.timedelta(minutes=minute)
        return local.astimezone(UTC)

    def end_of_day(self, day: dt.date) -> dt.datetime:
        """The exclusive end of local ``day``: local midnight after it, in UTC."""
        return self.at_local(day + dt.timedelta(days=1))

    def deadline_after(self, event_day: dt.date, working_days: int) -> dt.datetime:
        """End of the N-th working day after ``event_day`` (exclusive instant)."""
        return self.end_of_day(self.nth_working_day_after(event_day, working_days))

    @staticmethod
    def effective_date(deadline: dt.datetime) -> dt.date:
        """The calendar day an automatic consequence of a missed deadline is dated."""
        return deadline.astimezone(ALMATY).date()

    # --- the claim window -------------------------------------------------------------------
    def in_window(self, moment: dt.datetime, open_minute: int, close_minute: int) -> bool:
        local = moment.astimezone(ALMATY)
        if not self.is_working_day(local.date()):
            return False
        minute = local.hour * 60 + local.minute
        return open_minute <= minute < close_minute

    def window_end_after(self, moment: dt.datetime, close_minute: int, windows: int = 1) -> dt.datetime:
        """The end of the ``windows``-th claim window that ends after ``moment``."""
        day = self.local_date(moment)
        if not self.is_working_day(day) or self.at_local(day, close_minute) <= moment:
            day = self.next_working_day(day)
        for _ in range(windows - 1):
            day = self.next_working_day(day)
        return self.at_local(day, close_minute)

    def next_window_open(self, moment: dt.datetime, open_minute: int, close_minute: int) -> dt.datetime:
        """The start of the window in force at ``moment`` or of the next one."""
        day = self.local_date(moment)
        if self.is_working_day(day) and moment < self.at_local(day, close_minute):
            return self.at_local(day, open_minute)
        return self.at_local(self.next_working_day(day), open_minute)
