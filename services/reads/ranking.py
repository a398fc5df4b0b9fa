"""A queue's numbers at one version in one statement (``RANKING``: ``services.queue_numbers`` keeps
them), and ``reference``: each waiting application's number counted through the ORM
(``queue.queue_number``), which they must agree with.

What the statement writes out in SQL: who waits in a queue (``queued``, stop-listed ones included)
and a number as a rank, ``row_number()`` over the queue's order (``queue.QUEUE_KEY``), where the
live count is one more than the waiting applications ahead. The database's own ranking, so its
comparisons, collation included, are the live count's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services import queue
from storage.hot import Hot
from storage.models import Application
from storage.queue_versions import queue_version
from storage.vocab import AppStatus


def _statement() -> Any:
    """The queue's version and (application id, number) of each waiting one, by id. Parameters:
    ``district_id``, ``birth_year``."""
    A = Application
    ranked = (select(A.id, func.row_number().over(order_by=queue.QUEUE_KEY).label("n"))
              .where(A.district_id == bindparam("district_id"), A.birth_year == bindparam("birth_year"),
                     A.status == AppStatus.QUEUED)
              .subquery())
    version = select(queue_version(bindparam("district_id"), bindparam("birth_year")).label("version")).subquery()
    # One row at least (the version), with an empty queue too.
    return (select(version.c.version, ranked.c.id, ranked.c.n)
            .select_from(version.outerjoin(ranked, true()))
            .order_by(ranked.c.id))


RANKING = Hot(_statement())


async def reference(session: AsyncSession, district_id: int, birth_year: int) -> tuple[int, list[tuple[int, int]]]:
    """``RANKING``'s answer through the ORM: the queue's version and (id, ``queue.queue_number``)
    of each application waiting in it, by id."""
    version = (await session.execute(select(queue_version(district_id, birth_year)))).scalar_one()
    apps = (await session.execute(select(Application).where(
        Application.district_id == district_id, Application.birth_year == birth_year,
        Application.status == AppStatus.QUEUED).order_by(Application.id))).scalars().all()
    numbers = []
    for app in apps:
        number = await queue.queue_number(session, app)
        assert number is not None
        numbers.append((app.id, number))
    return version, numbers
