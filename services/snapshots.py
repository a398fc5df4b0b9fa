"""The nightly queue-number snapshot: one ``QueueSnapshot(day, application, number)`` row per
waiting application, the number it had that night (Asia/Almaty day).

Numbers are computed inside the database in one ``INSERT … SELECT``: a window function numbers
each queue's (district, birth year) waiting members in queue order (``services.queue.QUEUE_KEY``),
which is exactly ``queue_number`` (1 + the waiting members ahead). No row passes through Python:
1,000,000 applications took 30 s and a queue's rows in memory when they were read and written
back (``kezek bench memory``).

Idempotent: a day that has its snapshot is left as it is (a restart, a late run or a second
instance changes nothing), and the rows are inserted with ON CONFLICT DO NOTHING so two instances
that race on an empty day write each row once."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, Date, Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.calendar import WorkingCalendar
from services.context import Ctx
from services.queue import QUEUE_KEY
from storage.models import Application, QueueSnapshot
from storage.vocab import AppStatus

A = Application

# Every waiting application with its number in its queue, in one pass over the queue index.
_NUMBERED = (
    select(bindparam("day", type_=Date), A.id,
           func.row_number().over(partition_by=(A.district_id, A.birth_year), order_by=QUEUE_KEY))
    .where(A.status == AppStatus.QUEUED)
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
    insert_ = pg_insert if ctx.is_postgres else sqlite_insert
    table = cast(Table, QueueSnapshot.__table__)  # (typed as any FromClause; a mapped class's is a Table)
    stmt = (insert_(table).from_select(["day", "application_id", "number"], _NUMBERED)
            .on_conflict_do_nothing(index_elements=["day", "application_id"]))
    result = cast(CursorResult[Any], await ctx.session.execute(stmt, {"day": day}))
    written = max(result.rowcount or 0, 0)
    if written:
        ctx.audit("queue.snapshot", "queue_snapshot", None, day=day.isoformat(), rows=written)
    return written
