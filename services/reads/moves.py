"""Why a number moved: the signed move per cause from the queue events ahead of an application
since a moment, in one statement run on the driver (``move_causes``: a /status card's causes), and
``reference``: ``queue.move_causes``, the same through the ORM (``queue.view``'s), which it must
agree with.

What the statement writes out in SQL: which events are ahead of an application (its queue, after
the moment, not its own, with a queue key before its own: ``queue.events_ahead``'s criteria)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services import queue
from storage.hot import Hot, HotReader, fetch_all
from storage.models import Application, QueueEvent, UTCDateTime

MOVE_CAUSES = Hot(
    select(QueueEvent.cause, func.sum(QueueEvent.delta)).where(
        QueueEvent.district_id == bindparam("district_id"), QueueEvent.birth_year == bindparam("birth_year"),
        QueueEvent.at > bindparam("since", type_=UTCDateTime()),
        QueueEvent.application_id != bindparam("app_id"),
        tuple_(QueueEvent.priv_rank, QueueEvent.submitted_at, QueueEvent.number) < tuple_(
            bindparam("rank"), bindparam("submitted_at", type_=UTCDateTime()), bindparam("number")),
    ).group_by(QueueEvent.cause))


async def move_causes(db: AsyncSession | HotReader, app: Any, since: dt.datetime) -> dict[str, int]:
    """The signed sum of moves per cause, from events ahead of ``app`` after ``since`` (``app``:
    an Application or a row with its queue key; ``db``: a hot read, or a session that runs the same
    statement through SQLAlchemy)."""
    params = {"district_id": app.district_id, "birth_year": app.birth_year, "since": since,
              "app_id": app.id, "rank": app.priv_rank, "submitted_at": app.submitted_at, "number": app.number}
    return {cause: int(total) for cause, total in await fetch_all(db, MOVE_CAUSES, params) if total}


async def reference(session: AsyncSession, app: Application, since: dt.datetime) -> dict[str, int]:
    """``move_causes`` through the ORM: ``queue.move_causes``."""
    return await queue.move_causes(session, app, since)
