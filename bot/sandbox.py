"""The sandbox's test clock, moved on purpose: like the test clocks of payment sandboxes, moving it
forward runs, in order, everything the scheduler would have run in between — the sweeps at each
claim window's opening and end, two hours before the end (offer reminders), at midnight
(show-up, documents and stop-list deadlines), the nightly snapshot and the daily digest — each at
its own moment, so an integrator sees a deadline fire exactly as it would in production.

Used by the sandbox API (``POST /api/v1/sandbox/clock``) and the console demo (``!advance``)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bot.scheduler import EDGE_SECOND, SNAPSHOT_MINUTE, profile_windows
from services.calendar import ALMATY
from services.clock import SandboxClock
from services.kezek import Kezek
from services.reminders import OFFER_AHEAD

# A move is refused beyond this (a year of sweeps is ~2,000 runs).
MAX_MOVE = dt.timedelta(days=366)


_DURATION = re.compile(r"P(?:(\d{1,4})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,8})H)?(?:(\d{1,10})M)?(?:(\d{1,12})S)?)?")


def parse_iso_duration(text: str) -> dt.timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds: ``P1D``, ``PT3H``,
    ``P2DT30M``, ``PT90S`` (any case). No sign, no years or months (their length is not fixed), no
    fractions. ``ValueError`` otherwise."""
    if not isinstance(text, str):
        raise ValueError("type")
    value = text.strip().upper()
    m = _DURATION.fullmatch(value)
    if m is None or not any(m.groups()) or value.endswith("T"):
        raise ValueError("duration")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


class ClockMoveError(ValueError):
    """The clock cannot be moved like that (backwards, or too far at once)."""


def _moments(start: dt.datetime, end: dt.datetime, minutes: dict[int, set[str]]) -> list[tuple[dt.datetime, set[str]]]:
    """The moments in (start, end] at ``minute`` past local midnight (+ EDGE_SECOND) of each day,
    with what runs then."""
    out: list[tuple[dt.datetime, set[str]]] = []
    day = start.astimezone(ALMATY).date() - dt.timedelta(days=1)
    last = end.astimezone(ALMATY).date()
    while day <= last:
        midnight = dt.datetime.combine(day, dt.time(0, 0), tzinfo=ALMATY)
        for minute, jobs in minutes.items():
            at = (midnight + dt.timedelta(minutes=minute, seconds=EDGE_SECOND)).astimezone(dt.UTC)
            if start < at <= end:
                out.append((at, jobs))
        day += dt.timedelta(days=1)
    return sorted(out, key=lambda m: m[0])


async def schedule_between(kz: Kezek, start: dt.datetime, end: dt.datetime, *, snapshot_hour: int = 0,
                           digest_hour: int = 10) -> list[tuple[dt.datetime, set[str]]]:
    """What the scheduler runs between ``start`` (excluded) and ``end``: (moment, jobs) in order."""
    minutes: dict[int, set[str]] = {0: {"sweep"}}
    for open_minute, close_minute in await profile_windows(kz):
        ahead = int(OFFER_AHEAD.total_seconds() // 60)
        for minute in (open_minute, close_minute, close_minute - ahead):
            minutes.setdefault(minute % (24 * 60), set()).add("sweep")
    minutes.setdefault(snapshot_hour * 60 + SNAPSHOT_MINUTE, set()).add("snapshot")
    minutes.setdefault(digest_hour * 60, set()).add("digest")
    return _moments(start, end, minutes)


async def move_clock(kz: Kezek, clock: SandboxClock, *, advance: dt.timedelta | None = None,
                     to: dt.datetime | None = None, snapshot_hour: int = 0,
                     digest_hour: int = 10) -> dict[str, Any]:
    """Move ``clock`` forward by ``advance`` or to ``to``, running every scheduled job that falls
    in between at its own moment, then the sweeps at the new time. Returns the new time and, for
    each moment where something happened, what did."""
    start = clock.now()
    if (advance is None) == (to is None):
        raise ClockMoveError("give either advance or to")
    if to is not None and to.tzinfo is None:
        raise ClockMoveError("the time needs a UTC offset")
    target = start + advance if advance is not None else to.astimezone(dt.UTC)  # type: ignore[union-attr]
    if target < start:
        raise ClockMoveError("the sandbox clock only moves forward")
    if target - start > MAX_MOVE:
        raise ClockMoveError("at most 366 days at once")
    steps: list[dict[str, Any]] = []
    moments = await schedule_between(kz, start, target, snapshot_hour=snapshot_hour, digest_hour=digest_hour)
    for at, jobs in [*moments, (target, {"sweep"})]:
        clock.set(at)
        done: dict[str, int] = {}
        if "sweep" in jobs:
            done.update({k: v for k, v in (await kz.run_sweeps()).items() if v})
        if "snapshot" in jobs:
            rows = await kz.snapshot_queue()
            if rows:
                done["snapshot_rows"] = rows
        if "digest" in jobs:
            moved = await kz.announce_moves()
            if moved:
                done["moves_announced"] = moved
        if done:
            steps.append({"at": at.isoformat(), **done})
    clock.set(target)
    return {"now": clock.now().isoformat(), "sweeps": steps}
