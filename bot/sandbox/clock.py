"""The sandbox's test clock, moved on purpose: like the test clocks of payment sandboxes, moving it
forward runs, in order, everything the scheduler would have run in between — the sweeps at each
claim window's opening and end, two hours before the end (offer reminders), at midnight
(show-up, documents and stop-list deadlines), the nightly snapshot and the daily digest — each at
its own moment, so an integrator sees a deadline fire exactly as it would in production.

Used by the sandbox API (``POST /api/v1/sandbox/clock``) and the console demo (``!advance``).

The clock is the sandbox's, not a process's: its lead over real time is kept in the sandbox's
database (table ``sandbox_clock``), written whenever it moves, read by every ``kezek`` command at
start (``kezek seats publish`` from a second terminal runs at the sandbox's moment) and followed
by a long-running process (``follow_stored_clock``). A database without that row is not a sandbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.jobs import EDGE_SECOND, daily_jobs, profile_windows
from services.calendar import ALMATY
from services.clock import SandboxClock
from services.kezek import Kezek
from storage.db import Database
from storage.models import SandboxClockRow

log = logging.getLogger(__name__)

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
    minutes: dict[int, set[str]] = {}
    table = daily_jobs(await profile_windows(kz), snapshot_hour=snapshot_hour, digest_hour=digest_hour)
    for job in table.values():  # (the sandbox runs each a few seconds past its minute, after the edge)
        minutes.setdefault(job.minute, set()).add(job.action)
    return _moments(start, end, minutes)


def _target(start: dt.datetime, advance: dt.timedelta | None, to: dt.datetime | None) -> dt.datetime:
    """Where ``move_clock`` goes: ``start + advance``, or ``to`` (with its offset); exactly one given."""
    if advance is not None and to is None:
        return start + advance
    if to is not None and advance is None:
        if to.tzinfo is None:
            raise ClockMoveError("the time needs a UTC offset")
        return to.astimezone(dt.UTC)
    raise ClockMoveError("give either advance or to")


async def move_clock(kz: Kezek, clock: SandboxClock, *, advance: dt.timedelta | None = None,
                     to: dt.datetime | None = None, snapshot_hour: int = 0,
                     digest_hour: int = 10) -> dict[str, Any]:
    """Move ``clock`` forward by ``advance`` or to ``to``, running every scheduled job that falls
    in between at its own moment, then the sweeps at the new time. Returns the new time and, for
    each moment where something happened, what did."""
    start = clock.now()
    target = _target(start, advance, to)
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
        if "staff_digest" in jobs:
            told = await kz.staff_digest()
            if told:
                done["staff_digests"] = told
        if done:
            steps.append({"at": at.isoformat(), **done})
    clock.set(target)
    await store_clock(kz.db, clock)
    return {"now": clock.now().isoformat(), "sweeps": steps}


# --- the clock kept in the sandbox's database ---------------------------------------------------

_ROW = 1  # the one row


async def stored_offset(db: Database) -> dt.timedelta | None:
    """The sandbox clock's lead over real time kept in ``db``; None when ``db`` is not a sandbox
    (no row, or a database not migrated yet)."""
    try:
        async with db.read(small=True) as session:
            value = (await session.execute(select(SandboxClockRow.offset_us)
                                           .where(SandboxClockRow.id == _ROW))).scalar_one_or_none()
    except (OperationalError, ProgrammingError) as exc:
        if "sandbox_clock" in str(exc):  # no such table: not migrated yet, not a sandbox
            return None
        raise
    return None if value is None else dt.timedelta(microseconds=value)


async def store_clock(db: Database, clock: SandboxClock) -> None:
    """Keep ``clock``'s lead in ``db`` (which makes ``db`` a sandbox), for every process on it."""
    offset_us = (clock.offset // dt.timedelta(microseconds=1))
    values = {"offset_us": offset_us, "updated_at": dt.datetime.now(dt.UTC)}
    insert = pg_insert if db.is_postgres else sqlite_insert
    async with db.write() as session:
        await session.execute(insert(SandboxClockRow).values(id=_ROW, **values)
                              .on_conflict_do_update(index_elements=["id"], set_=values))


async def open_sandbox_clock(db: Database, start: dt.datetime | None = None) -> SandboxClock:
    """The sandbox's clock for a process that runs it (``kezek demo``, ``kezek run`` with
    KEZEK_SANDBOX=1): from ``start`` (``--now``) when given, else where the database's clock
    stands (a restarted demo goes on from its moment), else from real time; never back from
    where the database's clock stands (what happened there stays in the past); kept in ``db``."""
    offset = await stored_offset(db)
    clock = SandboxClock(start) if start is not None else SandboxClock()
    if offset is not None:
        if start is None:
            clock = SandboxClock.at_offset(offset)
        else:
            clock.follow(offset)
    await store_clock(db, clock)
    return clock


async def follow_stored_clock(db: Database, clock: SandboxClock, *, every: float = 1.0) -> None:
    """Forever: take the database's clock when another process moved it ahead (a second
    ``kezek demo``, the API of another instance), every ``every`` seconds."""
    while True:
        try:
            offset = await stored_offset(db)
            if offset is not None:
                clock.follow(offset)
        except Exception as exc:  # noqa: BLE001 - a database hiccup: try again next time
            log.warning("reading the sandbox clock failed: %s", type(exc).__name__)
        await asyncio.sleep(every)


# --- a claim refused because the window is closed: how to get there in the sandbox ---------------

def time_to(moment: dt.datetime, now: dt.datetime) -> dt.timedelta:
    """From ``now`` to ``moment``, rounded up to a whole minute (at least one)."""
    minutes = -(-(moment - now) // dt.timedelta(minutes=1))
    return dt.timedelta(minutes=max(1, minutes))


def compact_duration(delta: dt.timedelta) -> str:
    """``2d14h5m``: what ``!advance`` reads (whole minutes)."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n) or "1m"


def window_opens(exc: Any) -> dt.datetime | None:
    """When the claim window opens next, from an ``outside_claim_window`` refusal (None: unknown)."""
    from locales.formats import parse_moment

    if getattr(exc, "code", None) != "outside_claim_window":
        return None
    return parse_moment((getattr(exc, "params", None) or {}).get("opens_at"))


def window_hint(lang: str, exc: Any, now: dt.datetime, *, console: bool = False) -> str:
    """A claim refused outside the claim window, in the sandbox: when the window opens (with the
    zone) and how to move the sandbox's clock there (``!advance`` in the console, the command
    ``kezek sandbox clock --advance`` otherwise: the CLI and the Telegram bot of ``kezek demo``)."""
    from locales import gettext
    from locales.formats import format_datetime

    opens = window_opens(exc)
    delta = dt.timedelta(hours=1) if opens is None else time_to(opens, now)
    command = f"!advance {compact_duration(delta)}" if console else \
        f"kezek sandbox clock --advance {compact_duration(delta)}"
    if opens is None:
        return gettext(lang, "In the sandbox, move the clock forward to the claim window: {command}",
                       command=command)
    return gettext(lang, "The claim window opens {moment}. In the sandbox, move the clock there: {command}",
                   moment=format_datetime(lang, opens, zone="local"), command=command)
