import datetime as dt

from services.calendar import ALMATY, UTC, WorkingCalendar

cal = WorkingCalendar()
D = dt.date


def test_almaty_is_utc_plus_five() -> None:
    assert dt.datetime(2026, 1, 15, 12, tzinfo=ALMATY).utcoffset() == dt.timedelta(hours=5)
    assert cal.at_local(D(2026, 9, 7), 9 * 60) == dt.datetime(2026, 9, 7, 4, 0, tzinfo=UTC)


def test_weekends_holidays_and_carry_overs() -> None:
    assert cal.is_working_day(D(2026, 9, 7))  # Monday
    assert not cal.is_working_day(D(2026, 9, 5))  # Saturday
    assert not cal.is_working_day(D(2026, 3, 23))  # Nauryz
    assert not cal.is_working_day(D(2026, 3, 25))  # Nauryz carried over from the weekend
    assert not cal.is_working_day(D(2026, 12, 16))  # Independence Day


def test_declared_working_weekend_is_a_working_day() -> None:
    assert D(2025, 1, 5).weekday() == 6
    assert cal.is_working_day(D(2025, 1, 5))  # the Sunday worked for the 3 January day off
    assert not cal.is_working_day(D(2025, 1, 3))


def test_holiday_names_in_both_languages() -> None:
    assert cal.holiday_name(D(2026, 12, 16), "ru") == "День Независимости"
    assert cal.holiday_name(D(2026, 12, 16), "kk") == "Тәуелсіздік күні"
    assert "перенесённый" in (cal.holiday_name(D(2026, 3, 25), "ru") or "")
    assert cal.holiday_name(D(2026, 9, 7)) is None


def test_operator_overrides_win() -> None:
    custom = WorkingCalendar({D(2026, 9, 8): (False, "Курбан айт"), D(2026, 9, 12): (True, "")})
    assert not custom.is_working_day(D(2026, 9, 8))
    assert custom.holiday_name(D(2026, 9, 8)) == "Курбан айт"
    assert custom.is_working_day(D(2026, 9, 12))  # a working Saturday
    # the 2nd working day after Monday 7 September skips the decreed day off
    assert custom.nth_working_day_after(D(2026, 9, 7), 2) == D(2026, 9, 10)


def test_deadline_is_the_end_of_the_nth_working_day_after_the_event() -> None:
    # Friday 27 November 2026 + 5 working days = Friday 4 December; ends at local midnight.
    due = cal.deadline_after(D(2026, 11, 27), 5)
    assert due == dt.datetime(2026, 12, 5, 0, 0, tzinfo=ALMATY)
    assert cal.effective_date(due) == D(2026, 12, 5)


def test_deadline_before_a_holiday_skips_it() -> None:
    # Thursday 19 March 2026: Fri 20, then Nauryz 21-25, then Thu 26 ... 5th is Tue 31 March.
    assert cal.nth_working_day_after(D(2026, 3, 19), 5) == D(2026, 3, 31)
    assert cal.nth_working_day_after(D(2026, 3, 20), 1) == D(2026, 3, 26)


def test_claim_window_boundaries() -> None:
    fri = D(2026, 9, 11)
    assert cal.in_window(dt.datetime(2026, 9, 11, 9, 0, tzinfo=ALMATY), 540, 1200)
    assert cal.in_window(dt.datetime(2026, 9, 11, 19, 59, 59, tzinfo=ALMATY), 540, 1200)
    assert not cal.in_window(dt.datetime(2026, 9, 11, 20, 0, tzinfo=ALMATY), 540, 1200)
    assert not cal.in_window(dt.datetime(2026, 9, 11, 8, 59, tzinfo=ALMATY), 540, 1200)
    assert not cal.in_window(dt.datetime(2026, 9, 12, 12, 0, tzinfo=ALMATY), 540, 1200)  # Saturday
    assert cal.window_end_after(dt.datetime(2026, 9, 11, 19, 59, tzinfo=ALMATY), 1200) == \
        cal.at_local(fri, 1200)
    assert cal.window_end_after(dt.datetime(2026, 9, 11, 20, 0, tzinfo=ALMATY), 1200) == \
        cal.at_local(D(2026, 9, 14), 1200)
    assert cal.window_end_after(dt.datetime(2026, 9, 11, 7, 0, tzinfo=ALMATY), 1200, windows=3) == \
        cal.at_local(D(2026, 9, 15), 1200)
    assert cal.next_window_open(dt.datetime(2026, 9, 11, 20, 0, tzinfo=ALMATY), 540, 1200) == \
        cal.at_local(D(2026, 9, 14), 540)
