"""Reminders before each deadline, and the opt-in "your queue number moved" notice.

Both are written by sweeps and are idempotent through their dedupe keys: a reminder per offer or
referral and deadline, a move notice per chat, application and number a day."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from services.context import Ctx
from services.queue import queue_number, record_look
from storage.models import (
    Application,
    AppStatus,
    Chat,
    ChatLink,
    DocsState,
    Offer,
    OfferStatus,
    QueueLook,
    Referral,
    ReferralStatus,
)

# How long before a deadline its reminder goes out.
OFFER_AHEAD = dt.timedelta(hours=2)
REFERRAL_AHEAD = dt.timedelta(days=1)


async def remind(ctx: Ctx) -> int:
    """Reminders for the offers, show-up deadlines and privilege documents falling due soon."""
    count = 0
    offers = (await ctx.session.execute(select(Offer.id, Offer.application_id, Offer.made_at, Offer.expires_at).where(
        Offer.status == OfferStatus.OPEN, Offer.expires_at > ctx.now,
        Offer.expires_at <= ctx.now + OFFER_AHEAD))).all()
    for offer_id, app_id, made_at, expires_at in offers:
        if made_at >= expires_at - OFFER_AHEAD:
            continue  # offered this late, the "your turn" alert itself is fresh
        ctx.notify("reminder_offer", app_id, f"reminder-offer:{offer_id}", offer_id=offer_id,
                   expires_at=expires_at.isoformat())
        count += 1
    soon = ctx.now + REFERRAL_AHEAD
    refs = (await ctx.session.execute(select(Referral).where(
        Referral.status == ReferralStatus.ISSUED, Referral.issued_at < ctx.now - dt.timedelta(hours=1),
        (Referral.showup_due_at <= soon) | (Referral.docs_due_at <= soon)))).scalars().all()
    for ref in refs:
        if ctx.now < ref.showup_due_at <= soon:
            ctx.notify("reminder_showup", ref.application_id, f"reminder-showup:{ref.id}",
                       referral_id=ref.id, due_at=ref.showup_due_at.isoformat())
            count += 1
        if ref.docs_state == DocsState.PENDING and ref.docs_due_at is not None and ctx.now < ref.docs_due_at <= soon:
            ctx.notify("reminder_docs", ref.application_id, f"reminder-docs:{ref.id}",
                       referral_id=ref.id, due_at=ref.docs_due_at.isoformat())
            count += 1
    return count


def notice_viewer(chat_id: int) -> str:
    """The look kept for the move notices of a chat (apart from what the chat saw in /status)."""
    return f"notice:{chat_id}"


async def announce_moves(ctx: Ctx) -> int:
    """For each chat that asked for it: a notice when the number of a linked waiting application
    differs from the one it was last told (the first run only remembers the number)."""
    rows = (await ctx.session.execute(
        select(ChatLink.chat_id, Application).join(Chat, Chat.id == ChatLink.chat_id)
        .join(Application, Application.id == ChatLink.application_id)
        .where(Chat.notify_moves.is_(True), Application.status == AppStatus.QUEUED))).all()
    count = 0
    day = ctx.now.date().isoformat()
    for chat_id, app in rows:
        number = await queue_number(ctx.session, app)
        if number is None:
            continue
        viewer = notice_viewer(chat_id)
        previous = (await ctx.session.execute(select(QueueLook.number).where(
            QueueLook.application_id == app.id, QueueLook.viewer == viewer))).scalar_one_or_none()
        if previous == number:
            continue
        if previous is not None:
            ctx.notify("queue_moved", app.id, f"moved:{chat_id}:{app.id}:{number}:{day}",
                       chat_id=chat_id, number=number, previous=previous)
            count += 1
        await record_look(ctx, app.id, viewer, number)
    return count
