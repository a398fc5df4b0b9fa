"""Scheduled work while the bot runs: the idempotent sweeps (offers closing at the window's end,
deadlines, stop-lists, reminders, free seats) on an APScheduler interval. The database is the
source of truth; a late, repeated or parallel run changes nothing it should not (DESIGN.md §2)."""

from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from services.kezek import Kezek

log = logging.getLogger("kezek.scheduler")


async def sweep_job(kz: Kezek) -> None:
    try:
        done = await kz.run_sweeps()
    except Exception as exc:  # noqa: BLE001 - the next run tries again
        log.error("sweep failed: %s", type(exc).__name__)
        return
    if any(done.values()):
        log.info("sweep: %s", done)


async def moves_job(kz: Kezek) -> None:
    try:
        await kz.announce_moves()
    except Exception as exc:  # noqa: BLE001 - the next run tries again
        log.error("move notices failed: %s", type(exc).__name__)


def make_scheduler(kz: Kezek, *, every_seconds: float = 30) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(sweep_job, "interval", args=[kz], seconds=every_seconds, id="sweeps",
                      max_instances=1, coalesce=True)
    scheduler.add_job(moves_job, "interval", args=[kz], hours=1, id="moves", max_instances=1, coalesce=True)
    return scheduler


async def run_scheduler(kz: Kezek, *, every_seconds: float = 30) -> None:
    """Sweep once now (a restart catches up at once), then on the interval until cancelled."""
    await sweep_job(kz)
    scheduler = make_scheduler(kz, every_seconds=every_seconds)
    scheduler.start()
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)
