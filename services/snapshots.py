"""The nightly queue-number snapshot: one ``QueueSnapshot(day, application, number)`` row per
waiting application, the number it had that night (Asia/Almaty day).

Numbers are computed per queue (district, birth year) in one pass: a window function numbers the
queue's waiting members in queue order, which is exactly ``queue_number`` (1 + the waiting
members ahead); one query per queue, never one per application. The order is the queue's key
(``services.queue.QUEUE_KEY``).

Idempotent: a day that has its snapshot is left as it is (a restart, a late run or a second
instance changes nothing), and the rows are written with ``insert_ignore`` so two instances that
race on an empty day write each row once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, func, select

from services.calendar import WorkingCalendar
from services.context import Ctx
from services.queue import QUEUE_KEY
from storage.models import Application, AppStatus, QueueSnapshot

A = Application

_QUEUES = select(A.district_id, A.birth_year).where(A.status == AppStatus.QUEUED).distinct()
# The numbers of one queue's waiting members, in one pass over the queue's index.
_NUMBERS = (
    select(A.id, func.row_number().over(order_by=QUEUE_KEY))
    .where(A.district_id == bindparam("district_id"), A.birth_year == bindparam("birth_year"),
           A.status == AppStatus.QUEUED)
)


def snapshot_day(now: dt.datetime) -> dt.date:
    """The Almaty day a snapshot taken at ``now`` belongs to."""
    return WorkingCalendar.local_date(now)


async def has_snapshot(ctx: Ctx, day: dt.date) -> bool:
    row = (await ctx.session.execute(
        select(QueueSnapshot.application_id).where(QueueSnapshot.day == day).limit(1))).first()
    return row is not None


async def take_snapshot(ctx: Ctx, day: dt.date | None = None) -> int:
    """Write ``day``'s (default: today's, in Almaty) queue numbers unless that day has them.

    Returns the number of rows written (0 when the day was done already)."""
    day = day or snapshot_day(ctx.now)
    if await has_snapshot(ctx, day):
        return 0
    written = 0
    # Queue by queue: memory stays that of the largest queue, whatever the city's size.
    for district_id, birth_year in (await ctx.session.execute(_QUEUES)).all():
        numbers = (await ctx.session.execute(
            _NUMBERS, {"district_id": district_id, "birth_year": birth_year})).all()
        await ctx.insert_ignore(QueueSnapshot, [
            {"day": day, "application_id": app_id, "number": int(number)} for app_id, number in numbers
        ], ["day", "application_id"])
        written += len(numbers)
    if written:
        ctx.audit("queue.snapshot", "queue_snapshot", None, day=day.isoformat(), rows=written)
    return written
