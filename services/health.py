"""Read-only figures for operators' metrics and health checks (``bot.metrics``).

``due_backlog``: what waits for the senders right now, in ONE cheap query on the pending indexes
(``ix_deliveries_due``, ``ix_outbox_pending``): per channel, the deliveries due now and when the
oldest of them fell due; and the outbox rows not routed yet (``ROUTER``). Cheaper than the
operators' ``outbox_report`` (no counts by status, no failures), so it can run on every scrape and
every health probe."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, literal, select, union_all

from services.context import Ctx
from services.notifications import CHANNELS
from storage.models import Delivery, OutboxMessage

# The pseudo-channel of outbox rows that wait to be routed into deliveries.
ROUTER = "router"


@dataclass(frozen=True)
class Due:
    """What is due on one channel: how many, and how long the oldest has been due (seconds)."""

    count: int = 0
    oldest_seconds: float = 0.0
    retrying: int = 0  # pending after a refused try (due or not): an SMTP outage shows here


async def due_backlog(ctx: Ctx) -> dict[str, Due]:
    """``{channel: Due}`` for every channel (``CHANNELS``) and ``ROUTER``; zero where nothing is due."""
    now = ctx.now
    deliveries = (select(Delivery.channel.label("channel"), func.count().label("n"),
                         func.min(Delivery.next_attempt_at).label("oldest"))
                  .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                  .group_by(Delivery.channel))
    outbox = (select(literal(ROUTER).label("channel"), func.count().label("n"),
                     func.min(OutboxMessage.next_attempt_at).label("oldest"))
              .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now))
    out = {channel: Due() for channel in (*CHANNELS, ROUTER)}
    for channel, n, oldest in (await ctx.session.execute(union_all(deliveries, outbox))).all():
        if not n:
            continue
        out[str(channel)] = Due(int(n), max(_age(now, oldest), 0.0))
    for channel, n in (await ctx.session.execute(
            select(Delivery.channel, func.count()).where(Delivery.status == "pending",
                                                         Delivery.last_error.is_not(None))
            .group_by(Delivery.channel))).all():
        if str(channel) in out:
            out[str(channel)] = dataclasses.replace(out[str(channel)], retrying=int(n))
    return out


def _age(now: dt.datetime, oldest: dt.datetime | str | None) -> float:
    """Seconds since ``oldest`` (a union's column may come back untyped on SQLite: ISO text)."""
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):
        oldest = dt.datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return (now - oldest).total_seconds()
