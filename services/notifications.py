"""Notices: from the outbox to each recipient, with retries.

Every change writes its notices into the outbox in its own transaction (``Ctx.notify``). Here:

1. **Routing** turns a pending outbox row into deliveries, one per recipient and channel: a
   Telegram message to every chat linked to the application that wants this kind
   (``settings.notice_wanted``), an e-mail copy to the application's address (the official copy:
   always) and to a chat's own confirmed address. Codes go by e-mail only. ``(outbox_id,
   channel, target)`` is unique, so routing the same row twice adds nothing.
2. **Sending** claims due deliveries of one channel (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   several senders share the work; SQLite has one writer), leases them (a sender that dies
   mid-send leaves them due again after the lease), sends outside any transaction (the port the
   bot or the mailer provides) and records the result: sent; retry later (Telegram's
   ``retry_after``, or backoff for a network fault); or failed for good (the user blocked the bot,
   the chat is gone, too many tries).

No aiogram here: the bot layer provides the Telegram port and renders the texts."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from services.context import Ctx
from services.directory import KindergartenInfo
from services.facade import FacadeBase
from services.settings import notice_wanted
from services.validation import mask_iin
from storage.models import Application, Chat, ChatLink, Delivery, Group, Kindergarten, OutboxMessage

log = logging.getLogger("kezek.notices")

TELEGRAM = "telegram"
EMAIL = "email"
CHANNELS = (TELEGRAM, EMAIL)

# Codes travel by e-mail only, to the address being proven.
EMAIL_ONLY = frozenset({"link_code", "email_code"})
MAX_ATTEMPTS = 8
LEASE = dt.timedelta(minutes=2)
BACKOFF_CAP = dt.timedelta(hours=1)


class RetryLater(Exception):
    """The channel asks to try again after ``seconds`` (Telegram's retry_after, an SMTP 4xx)."""

    def __init__(self, seconds: float, reason: str = "retry") -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


class Undeliverable(Exception):
    """This recipient cannot get it, now or later (bot blocked, chat not found, address refused)."""


@dataclass(frozen=True)
class Notice:
    """What a renderer needs to word one delivery, in any language."""

    delivery_id: int
    channel: str
    target: str
    lang: str
    kind: str
    payload: dict[str, Any]
    application_id: int | None
    number: str | None = None
    child_iin_masked: str | None = None
    kindergarten: KindergartenInfo | None = None
    group_name: str | None = None
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# --- routing -------------------------------------------------------------------------------------------

def _pending_outbox(ctx: Ctx) -> Any:
    return select(OutboxMessage).where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= ctx.now)


def _due_deliveries(ctx: Ctx, channel: str) -> Any:
    return select(Delivery).where(Delivery.channel == channel, Delivery.status == "pending",
                                  Delivery.next_attempt_at <= ctx.now)


async def anything_due(ctx: Ctx, channels: tuple[str, ...] = CHANNELS) -> bool:
    """Whether there is work for the router or a sender: one cheap read on the pending indexes, so
    that an idle sender polls without taking the write lock."""
    checks = [_pending_outbox(ctx)] + [_due_deliveries(ctx, c) for c in channels]
    for q in checks:
        if (await ctx.session.execute(q.limit(1))).first() is not None:
            return True
    return False


async def route_outbox(ctx: Ctx, limit: int = 500) -> int:
    """Turn up to ``limit`` pending outbox rows into deliveries; returns how many were routed."""
    q = _pending_outbox(ctx).order_by(OutboxMessage.id).limit(limit)
    if ctx.is_postgres:
        q = q.with_for_update(skip_locked=True)
    rows = (await ctx.session.execute(q)).scalars().all()
    if not rows:
        return 0
    app_ids = {r.application_id for r in rows if r.application_id is not None}
    apps: dict[int, Application] = {}
    chats_of: dict[int, list[Chat]] = {}
    if app_ids:
        apps = {a.id: a for a in (await ctx.session.execute(
            select(Application).where(Application.id.in_(app_ids)))).scalars()}
        for app_id, chat in (await ctx.session.execute(
                select(ChatLink.application_id, Chat).join(Chat, Chat.id == ChatLink.chat_id)
                .where(ChatLink.application_id.in_(app_ids)).order_by(ChatLink.linked_at))).all():
            chats_of.setdefault(app_id, []).append(chat)
    deliveries: list[dict[str, Any]] = []

    def add(row: OutboxMessage, channel: str, target: str, lang: str) -> None:
        deliveries.append({"outbox_id": row.id, "channel": channel, "target": target, "lang": lang,
                           "status": "pending", "attempts": 0, "created_at": ctx.now, "next_attempt_at": ctx.now})

    for row in rows:
        payload = row.payload or {}
        app = apps.get(row.application_id) if row.application_id is not None else None
        if row.kind in EMAIL_ONLY:
            address = payload.get("email") or (app.email if app is not None else None)
            if address:
                add(row, EMAIL, str(address), "kk")
        else:
            chats = chats_of.get(row.application_id, []) if row.application_id is not None else []
            only = payload.get("chat_id")
            if only is not None:  # a notice for one chat (e.g. its queue number moved)
                chats = [c for c in chats if c.id == only]
            emails: list[str] = []
            for chat in chats:
                if not notice_wanted(chat, row.kind):
                    continue
                add(row, TELEGRAM, str(chat.id), chat.language or "ru")
                if chat.email:
                    emails.append(chat.email)
            if app is not None and app.email and only is None:
                emails.insert(0, app.email)  # the official copy of every notice
            for address in dict.fromkeys(e.lower() for e in emails):
                add(row, EMAIL, address, "kk")  # e-mails carry both languages
        row.status = "routed"
    if deliveries:
        await ctx.insert_ignore(Delivery, deliveries, ["outbox_id", "channel", "target"])
    return len(rows)


# --- sending -------------------------------------------------------------------------------------------

async def claim_due(ctx: Ctx, channel: str, limit: int = 50) -> list[Notice]:
    """Lease up to ``limit`` due deliveries of ``channel`` and gather what their texts need."""
    q = (_due_deliveries(ctx, channel).add_columns(OutboxMessage)
         .join(OutboxMessage, OutboxMessage.id == Delivery.outbox_id)
         .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    if ctx.is_postgres:
        q = q.with_for_update(of=Delivery, skip_locked=True)
    rows = (await ctx.session.execute(q)).all()
    if not rows:
        return []
    for delivery, _ in rows:
        delivery.attempts += 1
        delivery.next_attempt_at = ctx.now + LEASE
    app_ids = {o.application_id for _, o in rows if o.application_id is not None}
    apps = {a.id: a for a in (await ctx.session.execute(
        select(Application).where(Application.id.in_(app_ids)))).scalars()} if app_ids else {}
    kg_ids = {int(o.payload["kindergarten_id"]) for _, o in rows if (o.payload or {}).get("kindergarten_id")}
    kgs = {k.id: k for k in (await ctx.session.execute(
        select(Kindergarten).where(Kindergarten.id.in_(kg_ids)))).scalars()} if kg_ids else {}
    group_ids = {int(o.payload["group_id"]) for _, o in rows if (o.payload or {}).get("group_id")}
    groups = {g.id: g for g in (await ctx.session.execute(
        select(Group).where(Group.id.in_(group_ids)))).scalars()} if group_ids else {}
    out = []
    for delivery, outbox in rows:
        payload = dict(outbox.payload or {})
        app = apps.get(outbox.application_id) if outbox.application_id is not None else None
        kg = kgs.get(int(payload["kindergarten_id"])) if payload.get("kindergarten_id") else None
        group = groups.get(int(payload["group_id"])) if payload.get("group_id") else None
        out.append(Notice(
            delivery_id=delivery.id, channel=channel, target=delivery.target, lang=delivery.lang,
            kind=outbox.kind, payload=payload, application_id=outbox.application_id,
            number=app.number if app else None,
            child_iin_masked=mask_iin(app.child_iin) if app else None,
            kindergarten=KindergartenInfo.of(kg) if kg else None,
            group_name=group.name if group else None, attempts=delivery.attempts))
    return out


def backoff(attempts: int) -> dt.timedelta:
    return min(dt.timedelta(seconds=5 * 2 ** max(attempts - 1, 0)), BACKOFF_CAP)


async def record_result(ctx: Ctx, notice: Notice, error: BaseException | None) -> str:
    """Write down how a send went; returns the delivery's new status."""
    values: dict[str, Any]
    if error is None:
        values = {"status": "sent", "sent_at": ctx.now, "last_error": None}
    elif isinstance(error, Undeliverable):
        values = {"status": "failed", "last_error": str(error)[:200] or type(error).__name__}
    elif notice.attempts >= MAX_ATTEMPTS:
        values = {"status": "failed", "last_error": f"gave up after {notice.attempts} tries: {type(error).__name__}"}
    elif isinstance(error, RetryLater):
        values = {"next_attempt_at": ctx.now + dt.timedelta(seconds=max(error.seconds, 1)),
                  "last_error": error.reason[:200]}
    else:
        values = {"next_attempt_at": ctx.now + backoff(notice.attempts), "last_error": type(error).__name__}
    await ctx.session.execute(update(Delivery).where(Delivery.id == notice.delivery_id).values(**values)
                              .execution_options(synchronize_session=False))
    return str(values.get("status", "pending"))


async def scrub_codes(ctx: Ctx) -> None:
    """A code, once its e-mail went out (or failed for good), is not kept in the outbox."""
    done = select(Delivery.outbox_id).where(Delivery.status.in_(("sent", "failed")))
    rows = (await ctx.session.execute(select(OutboxMessage).where(
        OutboxMessage.kind.in_(EMAIL_ONLY), OutboxMessage.status == "routed",
        OutboxMessage.id.in_(done)))).scalars().all()
    for row in rows:
        row.payload = {k: ("******" if k == "code" else v) for k, v in (row.payload or {}).items()}
        row.status = "done"


Send = Callable[[Notice], Awaitable[None]]


class NotificationFacade(FacadeBase):
    async def notices_due(self, channels: tuple[str, ...] = CHANNELS) -> bool:
        async with self.reading(with_calendar=False) as ctx:
            return await anything_due(ctx, channels)

    async def route_notices(self, limit: int = 500) -> int:
        async with self.unit("router", with_calendar=False) as ctx:
            return await route_outbox(ctx, limit)

    async def deliver_due(self, channel: str, send: Send, limit: int = 50) -> dict[str, int]:
        """Send what is due on ``channel`` through ``send``; one short transaction to lease, none
        while sending, one to record each result (a crash after a send re-sends at most that one)."""
        async with self.unit("sender", with_calendar=False) as ctx:
            notices = await claim_due(ctx, channel, limit)
        counts = {"sent": 0, "pending": 0, "failed": 0}
        for notice in notices:
            error: BaseException | None = None
            try:
                await send(notice)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried or given up
                error = exc
                log.warning("delivery %s on %s: %s", notice.delivery_id, channel, type(exc).__name__)
            async with self.unit("sender", with_calendar=False) as ctx:
                counts[await record_result(ctx, notice, error)] += 1
                if channel == EMAIL and notice.kind in EMAIL_ONLY:
                    await scrub_codes(ctx)
        return counts
