"""Queue numbers computed once per version of a queue, not once per card.

A waiting application's number is one more than the count of the waiting applications ahead of
it; counted live, that is a range of ``ix_applications_queue`` as long as the queue ahead (0.3 ms
of PostgreSQL's CPU at 1,000 ahead, 1.3 ms at 4,000), for every /status. Here a process keeps,
per queue it was asked about, every waiting application's number at one version of the queue
(``storage.queue_versions``): the database's own ranking (``row_number()`` in the queue order,
so its comparisons, collation included, are the live count's). A card read at the same version
takes its number from there; at any other version the caller counts live, as before, and the
ranking is read again (at most once per ``reload_seconds`` per queue: a queue that changes all
the time is counted live between its reloads).

Memory: 16 bytes per application (two ``array('q')`` columns); least recently used queues are
dropped beyond ``max_entries`` applications in all.

A restored backup or a truncated database can bring a version back that a running process has
seen with another order: restart the instances after one (bot/deploy/README.md).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, true

from storage.db import Hot, HotReader
from storage.models import Application
from storage.queue_versions import queue_version
from storage.vocab import AppStatus

Queue = tuple[int, int]  # (district_id, birth_year)

MAX_ENTRIES = 2_000_000  # applications kept in all, per process (32 MB)
RELOAD_SECONDS = 1.0


def _ranking_statement() -> Any:
    A = Application
    ranked = (select(A.id, func.row_number().over(order_by=(A.priv_rank, A.submitted_at, A.number)).label("n"))
              .where(A.district_id == bindparam("district_id"), A.birth_year == bindparam("birth_year"),
                     A.status == AppStatus.QUEUED)
              .subquery())
    version = select(queue_version(bindparam("district_id"), bindparam("birth_year")).label("version")).subquery()
    # One row at least (the version), with an empty queue too.
    return (select(version.c.version, ranked.c.id, ranked.c.n)
            .select_from(version.outerjoin(ranked, true()))
            .order_by(ranked.c.id))


_RANKING = Hot(_ranking_statement())


@dataclass
class Ranking:
    version: int
    ids: array[int]  # the waiting applications' ids, ascending
    numbers: array[int]  # their queue numbers
    loaded_at: float

    def number_of(self, app_id: int) -> int | None:
        i = bisect_left(self.ids, app_id)
        return self.numbers[i] if i < len(self.ids) and self.ids[i] == app_id else None

    def __len__(self) -> int:
        return len(self.ids)


class QueueNumbers:
    """This process's rankings (see the module's docstring)."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, reload_seconds: float = RELOAD_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.reload_seconds, self.monotonic = max_entries, reload_seconds, monotonic
        self._rankings: OrderedDict[Queue, Ranking] = OrderedDict()
        self._entries = 0
        self._loading: dict[Queue, asyncio.Future[Ranking | None]] = {}
        self.loads = 0  # rankings read (for the tests and the benchmark's report)

    def cached(self, queue: Queue, version: int, app_id: int) -> int | None:
        """The number of ``app_id`` at ``version`` of ``queue``, if this process has that ranking."""
        ranking = self._rankings.get(queue)
        if ranking is None or ranking.version != version:
            return None
        self._rankings.move_to_end(queue)
        return ranking.number_of(app_id)

    async def number(self, db: HotReader, queue: Queue, version: int, app_id: int) -> int | None:
        """The number of ``app_id`` at ``version`` of ``queue``: from the ranking kept, else from
        one read again now (one read at a time per queue; the others wait for it). None: not at
        that version (the queue moved on before the read, or it was read again too recently):
        count it live."""
        number = self.cached(queue, version, app_id)
        if number is not None:
            return number
        ranking = self._rankings.get(queue)
        if ranking is not None and ranking.version == version:
            return None  # that version does not hold it waiting: the caller's row says otherwise
        pending = self._loading.get(queue)
        if pending is None:
            if ranking is not None and self.monotonic() - ranking.loaded_at < self.reload_seconds:
                return None
            pending = self._loading[queue] = asyncio.get_running_loop().create_future()
            loaded: Ranking | None = None
            try:
                ranking = loaded = await self._load(db, queue)
            finally:
                # Those waiting for it count live if it failed (or its update was cancelled): the
                # failure is this update's alone.
                pending.set_result(loaded)
                del self._loading[queue]
        else:
            ranking = await asyncio.shield(pending)
            if ranking is None:
                return None
        return ranking.number_of(app_id) if ranking.version == version else None

    async def _load(self, db: HotReader, queue: Queue) -> Ranking:
        rows = await db.all(_RANKING, {"district_id": queue[0], "birth_year": queue[1]})
        self.loads += 1
        ranking = Ranking(int(rows[0].version), array("q", (r.id for r in rows if r.id is not None)),
                          array("q", (r.n for r in rows if r.id is not None)), self.monotonic())
        old = self._rankings.pop(queue, None)
        self._entries -= len(old) if old is not None else 0
        if len(ranking) <= self.max_entries:
            self._rankings[queue] = ranking
            self._entries += len(ranking)
            while self._entries > self.max_entries:
                _queue, dropped = self._rankings.popitem(last=False)
                self._entries -= len(dropped)
        return ranking

    @property
    def entries(self) -> int:
        return self._entries

