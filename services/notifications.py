"""Notices: from the outbox to each recipient, with retries.

Every change writes its notices into the outbox in its own transaction (``Ctx.notify``). Here:

1. **Routing** turns a pending outbox row into deliveries, one per recipient and channel: a
   Telegram message to every chat linked to the application that wants this kind
   (``settings.notice_wanted``), an e-mail copy to the application's address (the official copy:
   always) and to a chat's own confirmed address. Codes go by e-mail only. ``(outbox_id,
   channel, target)`` is unique, so routing the same row twice adds nothing.
2. **Sending** claims due deliveries of one channel a few at a time (``FOR UPDATE SKIP LOCKED``
   on PostgreSQL, so several senders share the work; SQLite has one writer) and leases them for
   a short while (``LEASE``), which the sender renews while it holds them (a heartbeat every
   third of the lease): a sender that dies (SIGKILL, power) leaves them due again within one
   lease, and a live one is never waited out. It sends outside any transaction (the port the
   bot or the mailer provides) and records each result as soon as its send returns: sent; retry
   later (Telegram's ``retry_after``, or backoff for a network fault); or failed for good (the
   user blocked the bot, the chat is gone, too many tries).

No aiogram here: the bot layer provides the Telegram port and renders the texts.

Why one module of this size: routing, claiming, sending and recording a delivery share the
lease and the retry rules of one delivery row; apart, each would restate them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, func, or_, select, update

from services.context import Ctx
from services.directory import KindergartenInfo
from services.facade import FacadeBase
from services.notices import EMAIL_ONLY, STAFF_KINDS, NoticeKind
from services.pacing import Pacer
from services.queue import count_ahead
from services.settings import notice_wanted
from services.validation import mask_email, mask_iin
from storage.hot import Hot
from storage.models import (
    Application,
    Chat,
    ChatLink,
    Delivery,
    District,
    Group,
    Kindergarten,
    OutboxMessage,
)
from storage.vocab import AppStatus

log = logging.getLogger("kezek.notices")

TELEGRAM = "telegram"
EMAIL = "email"
CHANNELS = (TELEGRAM, EMAIL)

MAX_ATTEMPTS = 8
# How long a delivery a sender took stays its own without a sign of life: the sender renews it
# every third of this while it holds it, so only a dead sender's deliveries come due again.
LEASE = dt.timedelta(seconds=15)
BACKOFF_CAP = dt.timedelta(hours=1)


class RetryLater(Exception):
    """Try this delivery again later: after ``seconds`` when the channel said so (Telegram's
    ``retry_after``), else after the usual backoff (a 5xx, a timeout).
    ``flood``: the channel as a whole cannot take anything now, through no fault of this delivery
    (Telegram's 429; an SMTP server that is down or refuses our login): the try does not count
    against the delivery's limit, and a paced sender pauses every send for ``seconds``."""

    def __init__(self, seconds: float | None = None, reason: str = "retry", *, flood: bool = False) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason
        self.flood = flood


class Undeliverable(Exception):
    """This recipient cannot get it, now or later (bot blocked, chat not found, address refused).
    ``blocked``: the user blocked the bot; the chat gets no more Telegram notices until it writes
    to the bot again (its e-mail copies go on)."""

    def __init__(self, reason: str, *, blocked: bool = False) -> None:
        super().__init__(reason)
        self.blocked = blocked


@dataclass(frozen=True)
class Attachment:
    """A file that goes with a notice (the referral's PDF): as a Telegram document and as an
    attachment of the e-mail copy."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"

    def __repr__(self) -> str:  # never the bytes in a log line
        return f"Attachment({self.filename!r}, {len(self.content)} bytes, {self.content_type!r})"


@dataclass(frozen=True)
class Notice:
    """What a renderer needs to word one delivery, in any language."""

    delivery_id: int
    channel: str
    target: str
    lang: str
    kind: str  # as stored: a NoticeKind's value (services.notices), or a kind another version wrote
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
    apps, chats_of = await _recipients(ctx, {r.application_id for r in rows if r.application_id is not None})
    staff_chats = await _staff_chats(ctx, rows)
    deliveries: list[dict[str, Any]] = []
    for row in rows:
        app = apps.get(row.application_id) if row.application_id is not None else None
        chats = chats_of.get(row.application_id, []) if row.application_id is not None else []
        if row.kind in STAFF_KINDS:
            chats = staff_chats.get(int((row.payload or {}).get("chat_id", 0)), [])
        deliveries += [{"outbox_id": row.id, "channel": channel, "target": target, "lang": lang,
                        "status": "pending", "attempts": 0, "created_at": ctx.now, "next_attempt_at": ctx.now}
                       for channel, target, lang in _routes(row, app, chats)]
        row.status = "routed"
    if deliveries:
        await ctx.insert_ignore(Delivery, deliveries, ["outbox_id", "channel", "target"])
    return len(rows)


async def _recipients(ctx: Ctx, app_ids: set[int]) -> tuple[dict[int, Application], dict[int, list[Chat]]]:
    """The applications by id, and the chats linked to each (in the order they linked)."""
    apps: dict[int, Application] = {}
    chats_of: dict[int, list[Chat]] = {}
    if app_ids:
        apps = {a.id: a for a in (await ctx.session.execute(
            select(Application).where(Application.id.in_(app_ids)))).scalars()}
        for app_id, chat in (await ctx.session.execute(
                select(ChatLink.application_id, Chat).join(Chat, Chat.id == ChatLink.chat_id)
                .where(ChatLink.application_id.in_(app_ids)).order_by(ChatLink.linked_at))).all():
            chats_of.setdefault(app_id, []).append(chat)
    return apps, chats_of


async def _staff_chats(ctx: Ctx, rows: Sequence[OutboxMessage]) -> dict[int, list[Chat]]:
    """The chats of the staff notices' recipients (their language, whether they blocked the bot);
    a staff member who never wrote has no row yet: one in Russian stands in."""
    wanted = {int((r.payload or {}).get("chat_id", 0)) for r in rows if r.kind in STAFF_KINDS}
    if not wanted:
        return {}
    found = {c.id: c for c in (await ctx.session.execute(select(Chat).where(Chat.id.in_(wanted)))).scalars()}
    return {chat_id: [found.get(chat_id) or Chat(id=chat_id, language=None)] for chat_id in wanted}


def _routes(row: OutboxMessage, app: Application | None, chats: list[Chat]) -> list[tuple[str, str, str]]:
    """The deliveries of an outbox row: (channel, target, language) for each recipient."""
    payload = row.payload or {}
    if row.kind in STAFF_KINDS:  # a kindergarten's staff member: the one chat, no e-mail copy
        return [(TELEGRAM, str(c.id), c.language or "ru") for c in chats if c.blocked_at is None]
    if row.kind in EMAIL_ONLY:
        # Codes go to the address being proven (the payload's); so does the registration
        # notice with its deep link (services/deep_link.py): the application's address is
        # what the link proves.
        address = payload.get("email") or (app.email if app is not None else None)
        return [(EMAIL, str(address), "kk")] if address else []
    only = payload.get("chat_id")
    if only is not None:  # a notice for one chat (e.g. its queue number moved)
        chats = [c for c in chats if c.id == only]
    routes: list[tuple[str, str, str]] = []
    emails: list[str] = []
    for chat in chats:
        if not notice_wanted(chat, row.kind):
            continue
        if chat.blocked_at is None:  # a chat that blocked the bot keeps only its e-mail copy
            routes.append((TELEGRAM, str(chat.id), chat.language or "ru"))
        if chat.email:
            emails.append(chat.email)
    if app is not None and app.email and only is None:
        emails.insert(0, app.email)  # the official copy of every notice
    # e-mails carry both languages
    return routes + [(EMAIL, address, "kk") for address in dict.fromkeys(e.lower() for e in emails)]


# --- sending -------------------------------------------------------------------------------------------

async def claim_due(ctx: Ctx, channel: str, limit: int = 50, lease: dt.timedelta = LEASE) -> list[Notice]:
    """Lease up to ``limit`` due deliveries of ``channel`` for ``lease`` and gather what their
    texts need."""
    # Plain columns, not ORM objects, and one UPDATE for the lease: a fan-out leases thousands.
    q = (select(Delivery.id, Delivery.target, Delivery.lang, Delivery.attempts, OutboxMessage.kind,
                OutboxMessage.payload, OutboxMessage.application_id)
         .join(OutboxMessage, OutboxMessage.id == Delivery.outbox_id)
         .where(Delivery.channel == channel, Delivery.status == "pending", Delivery.next_attempt_at <= ctx.now)
         .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit))
    if ctx.is_postgres:
        q = q.with_for_update(of=Delivery, skip_locked=True)
    rows = (await ctx.session.execute(q)).all()
    if not rows:
        return []
    await ctx.session.execute(update(Delivery).where(Delivery.id.in_([r.id for r in rows]))
                              .values(attempts=Delivery.attempts + 1, next_attempt_at=ctx.now + lease)
                              .execution_options(synchronize_session=False))
    app_ids = {o.application_id for o in rows if o.application_id is not None}
    apps = {a.id: a for a in (await ctx.session.execute(
        select(Application.id, Application.number, Application.child_iin)
        .where(Application.id.in_(app_ids)))).all()} if app_ids else {}
    kg_ids = {int(o.payload["kindergarten_id"]) for o in rows if (o.payload or {}).get("kindergarten_id")}
    kgs = {k.id: k for k in (await ctx.session.execute(
        select(Kindergarten).where(Kindergarten.id.in_(kg_ids)))).scalars()} if kg_ids else {}
    group_ids = {int(o.payload["group_id"]) for o in rows if (o.payload or {}).get("group_id")}
    groups = {g.id: g for g in (await ctx.session.execute(
        select(Group).where(Group.id.in_(group_ids)))).scalars()} if group_ids else {}
    # The registration e-mail tells the queue and the number as they are when it is sent.
    reg_ids = {o.application_id for o in rows if o.kind == NoticeKind.REGISTRATION and o.application_id is not None}
    queues = {r.id: r for r in (await ctx.session.execute(
        select(Application.id, Application.status, Application.birth_year, District.name_ru, District.name_kk,
               count_ahead().label("ahead"))
        .join(District, District.id == Application.district_id)
        .where(Application.id.in_(reg_ids)))).all()} if reg_ids else {}
    out = []
    for row in rows:
        extra: dict[str, Any] = {}
        place = queues.get(row.application_id) if row.kind == NoticeKind.REGISTRATION else None
        if place is not None:
            extra = {"district_ru": place.name_ru, "district_kk": place.name_kk, "birth_year": place.birth_year,
                     "queue_number": 1 + int(place.ahead) if place.status == AppStatus.QUEUED else None,
                     "as_of": ctx.now}
        payload = dict(row.payload or {})
        app = apps.get(row.application_id) if row.application_id is not None else None
        kg = kgs.get(int(payload["kindergarten_id"])) if payload.get("kindergarten_id") else None
        group = groups.get(int(payload["group_id"])) if payload.get("group_id") else None
        if group is not None:
            payload.setdefault("language", group.language)  # the group's language, for the copy's details
        out.append(Notice(
            delivery_id=row.id, channel=channel, target=row.target, lang=row.lang,
            kind=row.kind, payload=payload, application_id=row.application_id,
            number=app.number if app else None,
            child_iin_masked=mask_iin(app.child_iin) if app else None,
            kindergarten=KindergartenInfo.of(kg) if kg else None,
            group_name=group.name if group else None, attempts=row.attempts + 1, extra=extra))
    return out


def backoff(attempts: int) -> dt.timedelta:
    return min(dt.timedelta(seconds=5 * 2 ** max(attempts - 1, 0)), BACKOFF_CAP)


def _outcome(ctx: Ctx, notice: Notice, error: BaseException | None) -> dict[str, Any]:
    """The columns a send's result sets on its delivery."""
    if error is None:
        return {"status": "sent", "sent_at": ctx.now, "last_error": None}
    if isinstance(error, Undeliverable):
        return {"status": "failed", "last_error": str(error)[:200] or type(error).__name__}
    if isinstance(error, RetryLater) and error.flood:
        # Telegram asked to slow down: not this delivery's fault, the try does not count.
        return {"next_attempt_at": ctx.now + dt.timedelta(seconds=max(error.seconds or 1, 1)),
                "attempts": max(notice.attempts - 1, 0), "last_error": error.reason[:200]}
    if notice.attempts >= MAX_ATTEMPTS:
        reason = error.reason if isinstance(error, RetryLater) else type(error).__name__
        return {"status": "failed", "last_error": f"gave up after {notice.attempts} tries: {reason}"[:200]}
    if isinstance(error, RetryLater):
        delay = dt.timedelta(seconds=max(error.seconds, 1)) if error.seconds is not None else backoff(notice.attempts)
        return {"next_attempt_at": ctx.now + delay, "last_error": error.reason[:200]}
    return {"next_attempt_at": ctx.now + backoff(notice.attempts), "last_error": type(error).__name__}


async def record_results(ctx: Ctx, results: list[tuple[Notice, BaseException | None]]) -> dict[str, int]:
    """Write down how a group of sends went (one transaction: a group commit); returns how many
    deliveries ended sent, failed, or still pending. A blocked bot marks the chat blocked."""
    counts = {"sent": 0, "pending": 0, "failed": 0}
    sent = [n.delivery_id for n, e in results if e is None]
    if sent:
        await ctx.session.execute(update(Delivery).where(Delivery.id.in_(sent))
                                  .values(status="sent", sent_at=ctx.now, last_error=None)
                                  .execution_options(synchronize_session=False))
        counts["sent"] = len(sent)
    for notice, error in results:
        if error is None:
            continue
        values = _outcome(ctx, notice, error)
        await ctx.session.execute(update(Delivery).where(Delivery.id == notice.delivery_id).values(**values)
                                  .execution_options(synchronize_session=False))
        counts[str(values.get("status", "pending"))] += 1
        if isinstance(error, Undeliverable) and error.blocked and notice.channel == TELEGRAM:
            await ctx.session.execute(update(Chat).where(Chat.id == int(notice.target), Chat.blocked_at.is_(None))
                                      .values(blocked_at=ctx.now).execution_options(synchronize_session=False))
    return counts


async def record_result(ctx: Ctx, notice: Notice, error: BaseException | None) -> str:
    """Write down how one send went; returns the delivery's new status."""
    counts = await record_results(ctx, [(notice, error)])
    return next(status for status, n in counts.items() if n)


async def renew_leases(ctx: Ctx, ids: list[int], lease: dt.timedelta = LEASE) -> int:
    """The sender holding ``ids`` is alive: their leases run ``lease`` from now; how many. Only a
    lease that has not run out yet is renewed: one that has may already be another sender's."""
    if not ids:
        return 0
    result = cast(CursorResult[Any], await ctx.session.execute(
        update(Delivery).where(Delivery.id.in_(ids), Delivery.status == "pending", Delivery.next_attempt_at > ctx.now)
        .values(next_attempt_at=ctx.now + lease).execution_options(synchronize_session=False)))
    return int(result.rowcount or 0)


async def defer_due(ctx: Ctx, channel: str, refusal: RetryLater) -> int:
    """The channel as a whole refused (Telegram's 429, the SMTP server away): everything due on it
    that no sender holds waits as long as the refused delivery, with its reason, no try used;
    how many. (Without this, the next rounds would each knock on the closed door again.)"""
    result = cast(CursorResult[Any], await ctx.session.execute(
        update(Delivery).where(Delivery.channel == channel, Delivery.status == "pending",
                               Delivery.next_attempt_at <= ctx.now)
        .values(next_attempt_at=ctx.now + dt.timedelta(seconds=max(refusal.seconds or 1, 1)),
                last_error=refusal.reason[:200])
        .execution_options(synchronize_session=False)))
    return int(result.rowcount or 0)


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


class _SendRound:
    """One round of ``NotificationFacade.deliver_due`` on a channel: the deliveries it leased and
    has not written the results of (``held``), the queue of those not started (``todo``), the
    workers that send them, the heartbeat that renews their lease, and the loop that writes the
    results (``run``)."""

    def __init__(self, facade: NotificationFacade, channel: str, send: Send, limit: int, *, workers: int,
                 ahead: int, pacer: Pacer | None, lease: dt.timedelta) -> None:
        self.facade, self.channel, self.send, self.limit = facade, channel, send, limit
        self.workers, self.ahead, self.pacer, self.lease = workers, ahead, pacer, lease
        self.counts = {"sent": 0, "pending": 0, "failed": 0}
        self.loop = asyncio.get_running_loop()
        self.todo: asyncio.Queue[Notice] = asyncio.Queue()
        self.held: dict[int, Notice] = {}  # leased by this round, result not yet written
        self.outcomes: asyncio.Queue[Any] = asyncio.Queue()
        self.renew = object()  # the heartbeat's mark in ``outcomes``
        self.claimed, self.exhausted = 0, False
        # The channel said "not now" (Telegram's 429, the SMTP server away or silent): the rest of
        # this round is not tried, and what is due and not taken yet is deferred with it
        # (``defer_due``): all wait the same (no try used), instead of each copy waiting out a
        # timeout.
        self.flood: list[RetryLater] = []
        self.deferred = False  # the due deliveries not taken yet: deferred once for the flood

    def take(self, notices: list[Notice], asked: int) -> None:
        for notice in notices:
            self.held[notice.delivery_id] = notice
            self.todo.put_nowait(notice)
        self.claimed += len(notices)
        self.exhausted = self.exhausted or len(notices) < asked

    async def attempt(self, notice: Notice) -> BaseException | None:
        flood, pacer = self.flood, self.pacer
        try:
            if flood:
                raise RetryLater(flood[0].seconds, flood[0].reason, flood=True)
            if pacer is None:
                await self.send(notice)
            else:
                async with pacer.slot(notice.target):
                    await self.send(notice)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried or given up
            if isinstance(exc, RetryLater) and exc.flood and not flood:
                flood.append(exc)
                if pacer is not None:
                    pacer.hold(exc.seconds or 1)
            # A channel-wide refusal (429, the SMTP server away) is logged once by its
            # port; a line per delivery would bury that line under a whole fan-out's.
            (log.debug if isinstance(exc, RetryLater) and exc.flood else log.warning)(
                "delivery %s on %s: %s", notice.delivery_id, self.channel, type(exc).__name__)
            return exc
        return None

    async def worker(self) -> None:
        while True:
            notice = await self.todo.get()
            error = await self.attempt(notice)
            # The slot is held until the result is written: what a crash can leave sent but
            # not written down is at most ``concurrency`` deliveries.
            written = self.loop.create_future()
            self.outcomes.put_nowait((notice, error, written))
            await written

    async def heartbeat(self) -> None:
        every = max(self.lease.total_seconds() / 3, 0.2)
        while True:
            await asyncio.sleep(every)
            self.outcomes.put_nowait(self.renew)

    def died(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.outcomes.put_nowait(task)  # a send that died (the process stopping): end the round

    async def run(self, first: list[Notice]) -> dict[str, int]:
        self.take(first, min(self.ahead, self.limit))
        tasks = [asyncio.create_task(self.worker()) for _ in range(self.workers)]
        tasks.append(asyncio.create_task(self.heartbeat()))
        for task in tasks:
            task.add_done_callback(self.died)
        try:
            while self.held:
                group = [await self.outcomes.get()]
                while not self.outcomes.empty():
                    group.append(self.outcomes.get_nowait())
                results = []
                for item in group:
                    if isinstance(item, asyncio.Task):
                        item.result()  # re-raises how it died
                    elif item is not self.renew:
                        results.append(item)
                if results:
                    await self._write(results)
                if self.held and any(item is self.renew for item in group):
                    await self._renew()
                await self._top_up()
        finally:
            for task in tasks:
                task.remove_done_callback(self.died)
                task.cancel()
        return self.counts

    async def _write(self, results: list[tuple[Notice, BaseException | None, asyncio.Future[None]]]) -> None:
        """The results that came back together, in one unit (a group commit); then their senders
        may go on."""
        async with self.facade.unit("sender", with_calendar=False) as ctx:
            for status, n in (await record_results(ctx, [(n, e) for n, e, _ in results])).items():
                self.counts[status] += n
            if self.channel == EMAIL and any(n.kind in EMAIL_ONLY for n, _, _ in results):
                await scrub_codes(ctx)
            if self.flood and not self.deferred:  # counted with the round's retries, as if tried
                self.counts["pending"] += await defer_due(ctx, self.channel, self.flood[0])
                self.deferred = True
        for notice, _, written in results:
            del self.held[notice.delivery_id]
            written.set_result(None)

    async def _renew(self) -> None:
        """The heartbeat's write. A failure (the database restarting) is logged, not fatal: the
        sends in flight must still get their results written; the next beat tries again."""
        try:
            async with self.facade.unit("sender", with_calendar=False) as ctx:
                await renew_leases(ctx, list(self.held), self.lease)
        except Exception as exc:  # noqa: BLE001
            log.warning("outbox lease renewal failed: %s", type(exc).__name__)

    async def _top_up(self) -> None:
        """Lease more when half of what waits to start has started (not after a flood, nor past
        ``limit``, nor once nothing more was due)."""
        if not (self.flood or self.exhausted) and self.claimed < self.limit and self.todo.qsize() <= self.ahead // 2:
            asked = min(self.ahead - self.todo.qsize(), self.limit - self.claimed)
            async with self.facade.unit("sender", with_calendar=False) as ctx:
                self.take(await claim_due(ctx, self.channel, asked, self.lease), asked)


_CHAT_SEEN = Hot(select(Chat.language, Chat.blocked_at).where(Chat.id == bindparam("chat_id")))


class NotificationFacade(FacadeBase):
    async def notices_due(self, channels: tuple[str, ...] = CHANNELS) -> bool:
        async with self.reading(with_calendar=False) as ctx:
            return await anything_due(ctx, channels)

    async def route_notices(self, limit: int = 500) -> int:
        async with self.unit("router", with_calendar=False) as ctx:
            return await route_outbox(ctx, limit)

    async def deliver_due(self, channel: str, send: Send, limit: int = 50, *, concurrency: int = 1,
                          pacer: Pacer | None = None, lease: dt.timedelta = LEASE,
                          ahead: int | None = None) -> dict[str, int]:
        """Send up to ``limit`` due deliveries of ``channel`` through ``send``; the counts of the
        results (sent, pending, failed; what a flood answer deferred counts as pending).

        Deliveries are leased a few at a time: short transactions keep about ``ahead`` (default
        twice ``concurrency``) taken and not yet started, so a sender that dies strands few. Up to
        ``concurrency`` sends run at once, paced by ``pacer``, outside any transaction. Each
        result is written as soon as its send returns (with any that returned while the previous
        write was going on: a group commit), and a send keeps its slot until its result is
        written: a crash can re-send at most ``concurrency`` deliveries (the Bot API has no
        idempotency key: a message Telegram took just before the crash cannot be told apart).
        While the round holds deliveries it renews their lease every third of ``lease`` (a
        heartbeat): when the process dies, what it held is due again within one lease."""
        workers = max(concurrency, 1)
        ahead = max(ahead if ahead is not None else 2 * workers, 1)
        async with self.unit("sender", with_calendar=False) as ctx:
            first = await claim_due(ctx, channel, min(ahead, limit), lease)
        if not first:
            return {"sent": 0, "pending": 0, "failed": 0}
        return await _SendRound(self, channel, send, limit, workers=workers, ahead=ahead, pacer=pacer,
                                lease=lease).run(first)

    async def withhold_pending(self, kind: str) -> int:
        """Mark the pending (unrouted) notices of ``kind`` done without sending them; how many.
        The demo's made-up families get no registration e-mails (thousands would bury the
        tester's own mail)."""
        async with self.unit("system", with_calendar=False) as ctx:
            result = cast(CursorResult[Any], await ctx.session.execute(
                update(OutboxMessage).where(OutboxMessage.kind == kind, OutboxMessage.status == "pending")
                .values(status="done").execution_options(synchronize_session=False)))
            return int(result.rowcount or 0)

    async def chat_seen(self, chat_id: int) -> str | None:
        """A chat wrote to the bot: its chosen language (None: not chosen yet). A chat that had
        blocked the bot has evidently unblocked it: its Telegram notices resume."""
        async with self.db.hot() as db:  # every update comes here first: on the driver (storage.hot.Hot)
            row = await db.first(_CHAT_SEEN, {"chat_id": chat_id})
        if row is None:
            return None
        if row.blocked_at is not None:
            async with self.unit("telegram", with_calendar=False) as ctx:
                await ctx.session.execute(update(Chat).where(Chat.id == chat_id).values(blocked_at=None)
                                          .execution_options(synchronize_session=False))
        language: str | None = row.language
        return language

    async def outbox_report(self, failed_limit: int = 20) -> dict[str, Any]:
        """For operators: the outbox and deliveries by status, what is due and how late, how many
        were retried and why they wait (``waiting_reasons``: "channel: reason" of the pending ones a
        try was refused for), chats that blocked the bot, and the latest failures with their
        reasons (recipients masked)."""
        async with self.reading(with_calendar=False) as ctx:
            s, now = ctx.session, ctx.now
            outbox = {k: int(v) for k, v in (await s.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))).all()}
            channels: dict[str, dict[str, int]] = {}
            for channel, status, n in (await s.execute(select(Delivery.channel, Delivery.status, func.count())
                                                       .group_by(Delivery.channel, Delivery.status))).all():
                channels.setdefault(channel, {})[status] = int(n)
            for channel in channels:
                due = select(func.count(), func.min(Delivery.next_attempt_at)).where(
                    Delivery.channel == channel, Delivery.status == "pending", Delivery.next_attempt_at <= now)
                n_due, oldest = (await s.execute(due)).one()
                # (a refusal of the whole channel, e.g. the SMTP server away, gives the try back:
                # attempts stay 0, the reason is kept)
                retried = (await s.execute(select(func.count()).where(
                    Delivery.channel == channel, Delivery.status == "pending",
                    or_(Delivery.attempts > 0, Delivery.last_error.is_not(None))))).scalar_one()
                channels[channel]["due_now"] = int(n_due)
                channels[channel]["waiting_to_retry"] = int(retried)
                channels[channel]["oldest_due_seconds"] = int((now - oldest).total_seconds()) if oldest else 0
            reasons = {str(k): int(v) for k, v in (await s.execute(
                select(Delivery.last_error, func.count()).where(Delivery.status == "failed")
                .group_by(Delivery.last_error))).all()}
            waiting = {f"{channel}: {reason}": int(n) for channel, reason, n in (await s.execute(
                select(Delivery.channel, Delivery.last_error, func.count())
                .where(Delivery.status == "pending", Delivery.last_error.is_not(None))
                .group_by(Delivery.channel, Delivery.last_error))).all()}
            latest = (await s.execute(
                select(Delivery.id, OutboxMessage.kind, Delivery.channel, Delivery.target, Delivery.attempts,
                       Delivery.last_error, Delivery.next_attempt_at)
                .join(OutboxMessage, OutboxMessage.id == Delivery.outbox_id)
                .where(Delivery.status == "failed").order_by(Delivery.id.desc()).limit(failed_limit))).all()
            blocked = (await s.execute(select(func.count()).where(Chat.blocked_at.is_not(None)))).scalar_one()
        return {
            "outbox": outbox, "deliveries": channels, "failed_reasons": reasons, "waiting_reasons": waiting,
            "blocked_chats": int(blocked),
            "failed_latest": [{"delivery": r.id, "kind": r.kind, "channel": r.channel,
                               "to": mask_target(r.channel, r.target), "tries": r.attempts,
                               "reason": r.last_error} for r in latest],
        }


def mask_target(channel: str, target: str) -> str:
    """A recipient fit for an operator's screen or a log: a masked address or chat id."""
    if channel == EMAIL:
        return mask_email(target)
    return target[:2] + "•" * max(len(target) - 4, 1) + target[-2:] if len(target) > 4 else "•" * len(target)
