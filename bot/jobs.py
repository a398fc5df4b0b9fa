"""Scheduled work while the bot runs, in Asia/Almaty. ``daily_jobs`` is the one table of what runs
at which minute of the local day: APScheduler's cron jobs are made from it, and the sandbox's clock
(bot/sandbox/clock.py) runs the same table when it is moved forward.

* ``sweeps``: the idempotent sweeps (offers closing at the window's end, deadlines, stop-lists,
  reminders, free seats) every ``every_seconds``: the safety net that catches anything late.
* ``window-close-HHMM``: a sweep a few seconds after each claim window's end (the distinct end
  minutes of the rule profiles; 20:00 by default), so that offers close and the passed seats open
  to everyone on time; ``window-open-HHMM``: a sweep a few seconds after each window's start, so
  that seats freed overnight are offered and the day's reminders go out as the window opens;
  ``window-remind-HHMM``: a sweep as the offers' last reminder falls due (``OFFER_AHEAD`` before
  the end).
  The profiles are read again every ``refresh_seconds`` and these jobs follow them.
* ``deadlines``: a sweep a few seconds after local midnight, when show-up, documents and stop-list
  deadlines end (the end of their day).
* ``snapshot``: the nightly queue-number snapshot a few minutes past ``snapshot_hour``.
* ``digest``: the opt-in "your number moved" notices once a day at ``digest_hour``.
* ``staff-digest``: on working days at 08:00, each kindergarten's staff are told how many referrals
  wait for a child with a deadline ending today or on the next working day (services/staff.py).

The database is the source of truth: every job calls an idempotent service, so a late, repeated or
parallel run (a restart, two instances) changes nothing twice. A failing job logs its error kind
(never personal data) and the next run tries again. ``catch_up`` (run at start) closes what fell
due while the bot was down and takes today's snapshot if it is missing.

Every run of ``sweep_job``, ``snapshot_job`` and ``moves_job`` is counted in ``bot.metrics``
(``kezek_jobs_total{job="sweep"|"snapshot"|"moves", outcome="ok"|"error"}``)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot import metrics
from services.calendar import ALMATY
from services.kezek import Kezek
from services.reminders import OFFER_AHEAD
from storage.vocab import DEFAULT_WINDOW_CLOSE_MINUTE, DEFAULT_WINDOW_OPEN_MINUTE

log = logging.getLogger("kezek.scheduler")
T = TypeVar("T")

# The default claim window (RULES.md, "Claim window": 09:00-20:00), as minutes after local midnight.
DEFAULT_WINDOW = (DEFAULT_WINDOW_OPEN_MINUTE, DEFAULT_WINDOW_CLOSE_MINUTE)
# Seconds after a window's edge its sweep runs (the edge itself is exclusive: at 20:00:00 the
# offer is closed already, so a sweep then closes it; a few seconds leave room for clock skew).
EDGE_SECOND = 5
# Minutes past the snapshot hour the snapshot is taken (after the midnight sweeps).
SNAPSHOT_MINUTE = 5
# The kindergarten staff's morning digest, Asia/Almaty (before the doors open).
STAFF_DIGEST_MINUTE = 8 * 60
# A cron run missed by up to this many seconds (a busy loop, a suspended machine) still runs.
MISFIRE_GRACE = 3600
_JOB = {"max_instances": 1, "coalesce": True, "misfire_grace_time": MISFIRE_GRACE, "replace_existing": True}


# --- the jobs: each logs and returns on failure; the next run tries again -----------------------

_sweeping: weakref.WeakKeyDictionary[Kezek, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _run(job: str, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
    """Run one job: a failure is logged (its kind only) and counted, and the next run tries again."""
    try:
        result = await call()
    except Exception as exc:  # noqa: BLE001 - the next run tries again
        log.error("%s failed: %s", what, type(exc).__name__)
        metrics.current().job_run(job, ok=False)
        return None
    metrics.current().job_run(job, ok=True)
    return result


async def sweep_job(kz: Kezek) -> dict[str, int] | None:
    # The interval and an edge job may fall on the same second: one sweep at a time in a process
    # (instances may still overlap; the sweeps are idempotent for that).
    lock = _sweeping.setdefault(kz, asyncio.Lock())

    async def sweep() -> dict[str, int]:
        async with lock:
            return await kz.run_sweeps()

    done = await _run("sweep", "sweep", sweep)
    if done and any(done.values()):
        log.info("sweep: %s", done)
    # The queues' changes since the last sweep into their versions' bases (storage.queue_versions):
    # it keeps the count a card reads short.
    await _run("fold", "queue versions fold", kz.fold_queue_changes)
    return done


async def snapshot_job(kz: Kezek) -> int | None:
    rows = await _run("snapshot", "queue snapshot", kz.snapshot_queue)
    if rows:
        log.info("queue snapshot: %d numbers", rows)
    return rows


async def moves_job(kz: Kezek) -> int | None:
    sent = await _run("moves", "move notices", kz.announce_moves)
    if sent:
        log.info("move notices: %d", sent)
    return sent


async def staff_digest_job(kz: Kezek) -> int | None:
    sent = await _run("staff_digest", "staff digest", kz.staff_digest)
    if sent:
        log.info("staff digests: %d", sent)
    return sent


async def catch_up(kz: Kezek) -> None:
    """What a bot that was down missed: every sweep that fell due (windows that closed, deadlines
    that passed, reminders), then today's snapshot if it was not taken. Safe to run any time."""
    await sweep_job(kz)
    await snapshot_job(kz)


ACTIONS: dict[str, Callable[[Kezek], Awaitable[object]]] = {
    "sweep": sweep_job, "snapshot": snapshot_job, "digest": moves_job, "staff_digest": staff_digest_job}


# --- the rule profiles' windows ------------------------------------------------------------------

async def profile_windows(kz: Kezek) -> set[tuple[int, int]]:
    """The distinct claim windows (open, close minute of the local day) of the rule profiles."""
    return await kz.profile_windows() or {DEFAULT_WINDOW}


# --- the schedule: one table -------------------------------------------------------------------

@dataclass(frozen=True)
class Daily:
    """A job at a fixed moment of the local day: ``minute`` after midnight, ``second`` past it."""

    minute: int
    action: str  # "sweep" | "snapshot" | "digest" | "staff_digest" (ACTIONS)
    second: int = 0


def window_jobs(windows: Iterable[tuple[int, int]]) -> dict[str, Daily]:
    """The sweeps at the claim windows' edges, and as the offers' last reminder falls due."""
    ahead = int(OFFER_AHEAD.total_seconds() // 60)
    jobs: dict[str, Daily] = {}
    for open_minute, close_minute in windows:
        for edge, minute in (("open", open_minute), ("close", close_minute), ("remind", close_minute - ahead)):
            minute %= 24 * 60
            hh, mm = divmod(minute, 60)
            jobs[f"window-{edge}-{hh:02d}{mm:02d}"] = Daily(minute, "sweep", EDGE_SECOND)
    return jobs


def daily_jobs(windows: Iterable[tuple[int, int]], *, snapshot_hour: int = 0,
               digest_hour: int = 10) -> dict[str, Daily]:
    """Every job at a moment of the day, by id: what the scheduler runs and the sandbox replays."""
    return {
        # Show-up, documents and stop-list deadlines end at local midnight (the end of their day).
        "deadlines": Daily(0, "sweep", EDGE_SECOND),
        **window_jobs(windows),
        "snapshot": Daily(snapshot_hour * 60 + SNAPSHOT_MINUTE, "snapshot"),
        "digest": Daily(digest_hour * 60, "digest"),
        "staff-digest": Daily(STAFF_DIGEST_MINUTE, "staff_digest"),
    }


def _cron(job: Daily) -> CronTrigger:
    hour, minute = divmod(job.minute, 60)
    return CronTrigger(hour=hour, minute=minute, second=job.second, timezone=ALMATY)


def set_window_jobs(scheduler: AsyncIOScheduler, kz: Kezek, windows: Iterable[tuple[int, int]]) -> None:
    """Make the window-edge jobs those of ``windows``: add the new edges, drop the gone ones."""
    wanted = window_jobs(windows)
    for job in scheduler.get_jobs():
        if job.id.startswith("window-") and job.id not in wanted:
            job.remove()
    for job_id, daily in wanted.items():
        if scheduler.get_job(job_id) is None:
            scheduler.add_job(ACTIONS[daily.action], _cron(daily), args=[kz], id=job_id, **_JOB)


async def refresh_job(scheduler: AsyncIOScheduler, kz: Kezek) -> None:
    """Follow the profiles an operator changed while the bot runs."""
    try:
        windows = await profile_windows(kz)
    except Exception as exc:  # noqa: BLE001 - the next run tries again
        log.error("reading the claim windows failed: %s", type(exc).__name__)
        return
    set_window_jobs(scheduler, kz, windows)


# --- the scheduler ------------------------------------------------------------------------------

def make_scheduler(kz: Kezek, *, every_seconds: float = 30, snapshot_hour: int = 0, digest_hour: int = 10,
                   windows: Iterable[tuple[int, int]] = (DEFAULT_WINDOW,),
                   refresh_seconds: float = 600) -> AsyncIOScheduler:
    """All the jobs (not started). ``windows`` are the rule profiles' claim windows
    (``profile_windows``); hours are Asia/Almaty."""
    scheduler = AsyncIOScheduler(timezone=ALMATY)
    scheduler.add_job(sweep_job, "interval", args=[kz], seconds=every_seconds, id="sweeps",
                      max_instances=1, coalesce=True, replace_existing=True)
    for job_id, daily in daily_jobs(windows, snapshot_hour=snapshot_hour, digest_hour=digest_hour).items():
        scheduler.add_job(ACTIONS[daily.action], _cron(daily), args=[kz], id=job_id, **_JOB)
    scheduler.add_job(refresh_job, "interval", args=[scheduler, kz], seconds=refresh_seconds,
                      id="windows", max_instances=1, coalesce=True, replace_existing=True)
    return scheduler


async def run_scheduler(kz: Kezek, *, every_seconds: float = 30, snapshot_hour: int = 0,
                        digest_hour: int = 10) -> None:
    """Catch up now (a restart closes at once what fell due while down), then run the jobs until
    cancelled."""
    await catch_up(kz)
    try:
        windows = await profile_windows(kz)
    except Exception as exc:  # noqa: BLE001 - the default window until the refresh reads them
        log.error("reading the claim windows failed: %s", type(exc).__name__)
        windows = {DEFAULT_WINDOW}
    scheduler = make_scheduler(kz, every_seconds=every_seconds, snapshot_hour=snapshot_hour,
                               digest_hour=digest_hour, windows=windows)
    scheduler.start()
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)
