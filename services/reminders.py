"""Reminders before each deadline, and the opt-in "your queue number moved" notice.

Both are written by sweeps and are idempotent through their dedupe keys: a reminder per offer or
referral and deadline, a move notice per chat, application and number a day.

* Offer: 2 hours before the claim window in which it lives closes.
* Show-up and privilege documents: one working day before the deadline: from the opening of the
  claim window (the profile's start hour) of the working day before the deadline's day."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, and_, cast, func, literal, select, tuple_

from services.calendar import WorkingCalendar
from services.context import Ctx
from services.notices import (
    NoticeKind,
    OfferReminder,
    Payload,
    QueueMoved,
    ReferralDeadline,
)
from services.queue import QUEUE_KEY, record_look
from storage.models import (
    Application,
    Chat,
    ChatLink,
    Offer,
    OutboxMessage,
    QueueLook,
    Referral,
)
from storage.vocab import AppStatus, DocsState, OfferStatus, ReferralStatus

# How long before the end of the claim window an open offer's reminder goes out.
OFFER_AHEAD = dt.timedelta(hours=2)


def previous_working_day(calendar: WorkingCalendar, day: dt.date) -> dt.date:
    """The last working day before ``day`` (``day`` itself never counts)."""
    d = day - dt.timedelta(days=1)
    while not calendar.is_working_day(d):
        d -= dt.timedelta(days=1)
    return d


def referral_reminder_from(calendar: WorkingCalendar, due_at: dt.datetime, open_minute: int) -> dt.datetime:
    """When the reminder of a referral deadline goes out: at the opening of the claim window
    (the profile's start hour, 09:00 by default) of the working day before the deadline's day.

    A deadline is the exclusive end of its day (local midnight after it), so its day is the one
    just before that instant. A calendar-day deadline may end on a day off (the 10th calendar
    day of the privilege documents): the reminder still goes on the last working day before it."""
    last_day = calendar.local_date(due_at - dt.timedelta(microseconds=1))
    return calendar.at_local(previous_working_day(calendar, last_day), open_minute)


async def remind(ctx: Ctx) -> int:
    """Reminders for the open offers closing soon (2 hours before the window ends) and for the
    show-up and privilege-documents deadlines of referrals (from the start of the working day
    before the deadline's day). One reminder per offer or referral and deadline (dedupe keys)."""
    due: list[tuple[NoticeKind, str, int, Payload]] = []  # kind, dedupe key, application, payload
    offers = (await ctx.session.execute(select(Offer.id, Offer.application_id, Offer.made_at, Offer.expires_at).where(
        Offer.status == OfferStatus.OPEN, Offer.expires_at > ctx.now,
        Offer.expires_at <= ctx.now + OFFER_AHEAD))).all()
    for offer_id, app_id, made_at, expires_at in offers:
        if made_at >= expires_at - OFFER_AHEAD:
            continue  # offered this late, the "your turn" alert itself is fresh
        due.append((NoticeKind.REMINDER_OFFER, f"reminder-offer:{offer_id}", app_id,
                    OfferReminder(offer_id=offer_id, expires_at=expires_at)))

    # A reminder is due today only if the deadline's day is at most the next working day (no
    # working day lies between today and it), i.e. the deadline is at most the end of that day.
    horizon = ctx.calendar.deadline_after(ctx.calendar.local_date(ctx.now), 1)
    rows = (await ctx.session.execute(
        select(Referral, Application.district_id).join(Application, Application.id == Referral.application_id)
        .where(Referral.status == ReferralStatus.ISSUED,
               (Referral.showup_due_at <= horizon)
               | ((Referral.docs_state == DocsState.PENDING) & (Referral.docs_due_at <= horizon)))
        .order_by(Referral.id))).all()
    for ref, district_id in rows:
        open_minute = (await ctx.profile(district_id)).window_open_minute
        deadlines = [(NoticeKind.REMINDER_SHOWUP, f"reminder-showup:{ref.id}", ref.showup_due_at)]
        if ref.docs_state == DocsState.PENDING and ref.docs_due_at is not None:
            deadlines.append((NoticeKind.REMINDER_DOCS, f"reminder-docs:{ref.id}", ref.docs_due_at))
        for kind, key, due_at in deadlines:
            if not ctx.now < due_at:
                continue  # passed: the deadline sweep annuls it
            start = referral_reminder_from(ctx.calendar, due_at, open_minute)
            if ctx.now < start or ref.issued_at >= start:
                continue  # not yet; or issued when the reminder was due: its own notice is fresh
            due.append((kind, key, ref.application_id, ReferralDeadline(referral_id=ref.id, due_at=due_at)))
    if not due:
        return 0
    # A reminder stays due for hours (a referral's for a day or more): skip those written
    # already, so that a sweep every few seconds does not hand the outbox the same rows again.
    # (The dedupe key still guards two sweeps running at once.)
    written = set((await ctx.session.execute(select(OutboxMessage.dedupe_key).where(
        OutboxMessage.dedupe_key.in_([key for _, key, _, _ in due])))).scalars())
    count = 0
    for kind, key, app_id, payload in due:
        if key not in written:
            ctx.notify(kind, app_id, key, payload)
            count += 1
    return count


def notice_viewer(chat_id: int) -> str:
    """The look kept for the move notices of a chat (apart from what the chat saw in /status)."""
    return f"notice:{chat_id}"


async def announce_moves(ctx: Ctx) -> int:
    """For each chat that asked for it: a notice when the number of a linked waiting application
    differs from the one it was last told (the first run only remembers the number).

    One statement: the numbers of every waiting application of the queues concerned in one
    window pass (a count per chat took 142 s for 10,000 chats over 1,000,000 applications), with
    each chat's last told number beside them; only those chats' rows come back."""
    opted = (select(Application.district_id, Application.birth_year)
             .join(ChatLink, ChatLink.application_id == Application.id)
             .join(Chat, Chat.id == ChatLink.chat_id)
             .where(Chat.notify_moves.is_(True), Application.status == AppStatus.QUEUED).distinct())
    ranked = (select(Application.id.label("app_id"),
                     func.row_number().over(partition_by=(Application.district_id, Application.birth_year),
                                            order_by=QUEUE_KEY).label("number"))
              .where(Application.status == AppStatus.QUEUED,
                     tuple_(Application.district_id, Application.birth_year).in_(opted))
              .subquery())
    viewer = literal("notice:") + cast(ChatLink.chat_id, String)
    rows = (await ctx.session.execute(
        select(ChatLink.chat_id, ranked.c.app_id, ranked.c.number, QueueLook.number)
        .join(ranked, ranked.c.app_id == ChatLink.application_id)
        .join(Chat, Chat.id == ChatLink.chat_id)
        .outerjoin(QueueLook, and_(QueueLook.application_id == ranked.c.app_id, QueueLook.viewer == viewer))
        .where(Chat.notify_moves.is_(True))
        .order_by(ChatLink.chat_id, ranked.c.app_id))).all()
    count = 0
    day = ctx.now.date().isoformat()
    for chat_id, app_id, number, previous in rows:
        if previous == number:
            continue
        if previous is not None:
            ctx.notify(NoticeKind.QUEUE_MOVED, app_id, f"moved:{chat_id}:{app_id}:{number}:{day}",
                       QueueMoved(chat_id=chat_id, number=number, previous=previous))
            count += 1
        await record_look(ctx, app_id, notice_viewer(chat_id), number)
    return count
