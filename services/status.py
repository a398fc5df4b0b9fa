"""The status screen (RULES.md "Queue"; the /status screen): one card per linked application, the history of its
queue number, and a forecast of when the turn may come at the recent pace.

No aiogram here: the cards are plain dataclasses that the bot layer renders. The viewer of a chat
is ``chat:<id>``; a card records the number this viewer saw (only when it changed, like
``Kezek.queue_view``), so the next card shows the move since then and its causes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from services import queue
from services.calendar import ALMATY
from services.chats import chat_viewer
from services.context import Ctx
from services.directory import KindergartenInfo
from services.errors import ReferralNotFound
from services.facade import FacadeBase, linked_application
from services.queue_numbers import QueueNumbers
from services.reads import cards as card_reads
from services.reads import moves as move_reads
from services.validation import mask_iin
from storage.hot import HotReader
from storage.models import Application, Referral
from storage.vocab import AppStatus, DocsState, ReferralStatus

log = logging.getLogger("kezek.status")

FORECAST_DAYS = 90  # the forecast goes at the pace of the queue over this many last days
# ... but never from before the application joined the queue (the registry's first bulk load
# puts everyone in at once: those arrivals moved no number), and not on less than this:
FORECAST_MIN_DAYS = 7
HISTORY_DAYS = 365  # the history goes back this far at most (or to the submission)
HISTORY_MOVES = 15  # days with moves listed under the chart, latest first

# Forecast kinds
FORECAST_FIRST = "first"  # number 1: the next suitable seat is offered to this application
FORECAST_ESTIMATE = "estimate"  # an expected date at the recent pace
FORECAST_UNKNOWN = "unknown"  # the queue ahead did not move: no forecast yet
FORECAST_TOO_EARLY = "too_early"  # the application joined the queue too recently to tell


@dataclass(frozen=True)
class Forecast:
    kind: str
    advanced: int = 0  # places the number advanced over the window (net, >= 0 when shown)
    days: int = FORECAST_DAYS
    expected: dt.date | None = None  # only for FORECAST_ESTIMATE; show month and year only


def expected_turn(number: int, advanced: int, today: dt.date, days: float = FORECAST_DAYS) -> dt.date | None:
    """The day the number may reach 1 if the queue keeps moving at ``advanced`` places per
    ``days`` days, or None when there is nothing to estimate (first already, or no pace).

    Number 11, 30 places in 90 days: a place every 3 days, 10 places to go, about 30 days."""
    if number <= 1 or advanced <= 0 or days <= 0:
        return None
    pace = advanced / days
    return today + dt.timedelta(days=math.ceil((number - 1) / pace))


def make_forecast(number: int, net_move: int, today: dt.date, days: float = FORECAST_DAYS,
                  not_before: dt.date | None = None) -> Forecast:
    """``net_move``: the signed move of the number over the last ``days`` days from the queue
    events ahead (negative = it advanced). ``not_before``: offers cannot come earlier (a
    stop-list's end)."""
    whole_days = int(days)
    if number <= 1:
        return Forecast(FORECAST_FIRST, days=whole_days)
    if days < FORECAST_MIN_DAYS:
        return Forecast(FORECAST_TOO_EARLY, days=whole_days)
    advanced = -net_move
    expected = expected_turn(number, advanced, today, days)
    if expected is None:
        return Forecast(FORECAST_UNKNOWN, advanced=max(advanced, 0), days=whole_days)
    if not_before is not None and expected < not_before:
        expected = not_before
    return Forecast(FORECAST_ESTIMATE, advanced=advanced, days=whole_days, expected=expected)


@dataclass
class StatusCard:
    application_id: int
    number: str  # the application number
    child_iin_masked: str
    district_name_ru: str
    district_name_kk: str
    birth_year: int
    status: str  # the application's status (queued, referred, admitted, removed, withdrawn)
    state: str  # waiting | stop_listed | offer_open | referred | admitted | removed | withdrawn
    privilege: str
    any_kindergarten: bool
    preferred: list[KindergartenInfo]
    queue_number: int | None  # None unless waiting in the queue
    previous_number: int | None  # the number this chat saw last (None: never looked)
    previous_at: dt.datetime | None  # since when this chat has seen previous_number
    causes: dict[str, int] = field(default_factory=dict)  # cause -> signed move since then
    until: dt.datetime | None = None  # stop-list end / offer expiry / referral show-up deadline
    docs_due_at: dt.datetime | None = None  # privilege documents due (referral, pending)
    referral_kindergarten: KindergartenInfo | None = None
    referral_id: int | None = None  # the live referral while the child has not been admitted yet
    forecast: Forecast | None = None

    @property
    def delta(self) -> int | None:
        return queue.number_move(self.queue_number, self.previous_number)

    @property
    def offer_open(self) -> bool:
        return self.state == "offer_open"


@dataclass(frozen=True)
class HistoryMove:
    day: dt.date  # Asia/Almaty calendar day
    delta: int  # the net signed move of the number that day
    causes: dict[str, int]  # cause -> signed move


@dataclass
class HistoryView:
    application_id: int
    number: str
    state: str
    waiting: bool  # only a waiting application has a number history
    queue_number: int | None = None
    since: dt.datetime | None = None
    points: list[tuple[dt.datetime, int]] = field(default_factory=list)  # (moment, number after it)
    moves: list[HistoryMove] = field(default_factory=list)  # latest first


def card_params(chat_id: int, now: dt.datetime) -> dict[str, Any]:
    """The parameters of a chat's cards statement (``services.reads.cards``) at ``now``."""
    return {"chat_id": chat_id, "viewer": chat_viewer(chat_id), "window_from": now - dt.timedelta(days=FORECAST_DAYS),
            "joined_by": now - dt.timedelta(days=FORECAST_MIN_DAYS)}


def _local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(ALMATY).date()


def forecast_of(app: Any, number: int, net: int | None, now: dt.datetime) -> Forecast:
    """At the pace of the queue ahead over the last FORECAST_DAYS days (or since the application
    joined): ``net``, the signed move over that window (``services.reads.cards``; None or anything when
    the window is shorter than FORECAST_MIN_DAYS). ``app``: an Application or a row with its
    ``created_at`` and ``stoplist_until``."""
    since = max(now - dt.timedelta(days=FORECAST_DAYS), app.created_at)
    days = (now - since).total_seconds() / 86400
    not_before = None
    if app.stoplist_until is not None and app.stoplist_until > now:
        not_before = _local_day(app.stoplist_until)
    return make_forecast(number, int(net or 0) if days >= FORECAST_MIN_DAYS else 0, _local_day(now), days, not_before)


async def _card(db: HotReader, now: dt.datetime, row: Any, number: int | None,
                look: tuple[int, dt.datetime] | None) -> StatusCard:
    """The card of one row of ``services.reads.cards`` (``queue.view``'s rules, on columns); ``number``: its
    queue number (None: not waiting); ``look``: the number this chat saw last and since when
    (None: never)."""
    look_number, look_at = look if look is not None else (None, None)
    state = queue.state_of(row.status, row.stoplist_until, row.offer_id is not None, now)
    causes: dict[str, int] = {}
    if look is not None and number is not None and number != look[0]:
        causes = await move_reads.move_causes(db, row, look[1])
    until: dt.datetime | None = None
    docs_due_at: dt.datetime | None = None
    referral_kg: KindergartenInfo | None = None
    referral_id: int | None = None
    if state == "stop_listed":
        until = row.stoplist_until
    elif state == "offer_open":
        until = row.offer_expires_at
    if row.referral_id is not None:
        if state == AppStatus.REFERRED:
            referral_id = row.referral_id
            until = row.showup_due_at
            if row.docs_state == DocsState.PENDING:
                docs_due_at = row.docs_due_at
        if row.kg_code is not None:
            referral_kg = KindergartenInfo(row.kg_code, row.kg_name_ru, row.kg_name_kk, row.kg_address or "")
    forecast = None
    if number is not None and state in ("waiting", "stop_listed"):
        forecast = forecast_of(row, number, row.forecast_net, now)
    return StatusCard(
        application_id=row.id, number=row.number, child_iin_masked=mask_iin(row.child_iin),
        district_name_ru=row.district_ru, district_name_kk=row.district_kk,
        birth_year=row.birth_year, status=row.status, state=state, privilege=row.privilege,
        any_kindergarten=row.any_kindergarten, preferred=[] if row.any_kindergarten else card_reads.preferred_of(row),
        queue_number=number, previous_number=look_number, previous_at=look_at,
        causes=causes, until=until, docs_due_at=docs_due_at,
        referral_kindergarten=referral_kg, referral_id=referral_id, forecast=forecast,
    )


async def history(ctx: Ctx, app: Application) -> HistoryView:
    number = await queue.queue_number(ctx.session, app)
    state = app.status
    if number is None:
        return HistoryView(app.id, app.number, state, waiting=False)
    # Since the submission or a year ago, whichever is later, and never from before Kezek got the
    # application: the registry's first load puts a whole queue in at once, and a number
    # rebuilt from before then would be made up.
    since = max(app.submitted_at, app.created_at, ctx.now - dt.timedelta(days=HISTORY_DAYS))
    events = await queue.events_ahead(ctx.session, app, since)
    points = queue.numbers_over_time(number, events, since, ctx.now)
    by_day: dict[dt.date, dict[str, int]] = {}
    for at, delta, cause in events:
        causes = by_day.setdefault(_local_day(at), {})
        causes[cause] = causes.get(cause, 0) + delta
    moves = []
    for day in sorted(by_day, reverse=True):
        causes = {c: n for c, n in by_day[day].items() if n}
        if causes:
            moves.append(HistoryMove(day, sum(causes.values()), causes))
        if len(moves) >= HISTORY_MOVES:
            break
    return HistoryView(app.id, app.number, "waiting", waiting=True, queue_number=number, since=since,
                       points=points, moves=moves)


class LookBuffer:
    """The numbers chats saw, waiting to be written together (group commit).

    Every first /status of a chat, and every one after its number moved, records a look; one
    write transaction per look made the write lock the bottleneck of a busy instance (on SQLite
    all instances queue on one lock). Here the looks of ``delay`` seconds go in one transaction.
    Until then this process reads them from here, so its next card already shows "no change";
    another instance may see the older look for that moment. A failed write keeps the looks for
    the next try; a crash loses at most ``delay`` seconds of them: the next card then counts the
    move from the look before (never a wrong number: the number itself is always read from the
    database, counted or from the queue's ranking at the version the card was read at)."""

    def __init__(self, facade: FacadeBase, delay: float) -> None:
        self.facade = facade
        self.delay = delay
        self.pending: dict[tuple[int, str], tuple[int, dt.datetime]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def get(self, app_id: int, viewer: str) -> tuple[int, dt.datetime] | None:
        return self.pending.get((app_id, viewer))

    def add(self, app_id: int, viewer: str, number: int, at: dt.datetime) -> None:
        self.pending[(app_id, viewer)] = (number, at)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.delay)
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - kept for the next try (flush put them back)
            log.warning("could not record %d looks, will retry: %s", len(self.pending), type(exc).__name__)
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def flush(self) -> int:
        """Write what is pending now (also at shutdown). Returns how many looks were written."""
        batch, self.pending = self.pending, {}
        if not batch:
            return 0
        try:
            async with self.facade.unit("looks", with_calendar=False) as ctx:
                await queue.record_looks(ctx, [{"application_id": app_id, "viewer": viewer, "number": number, "at": at}
                                               for (app_id, viewer), (number, at) in batch.items()])
        except BaseException:
            for key, value in batch.items():  # newer looks taken meanwhile win
                self.pending.setdefault(key, value)
            raise
        return len(batch)


class StatusFacade(FacadeBase):
    _looks: LookBuffer | None = None
    _numbers: QueueNumbers | None = None

    @property
    def queue_numbers(self) -> QueueNumbers:
        """This process's queue rankings (``services.queue_numbers``), made on first use."""
        if self._numbers is None:
            self._numbers = QueueNumbers()
        return self._numbers

    def buffer_looks(self, delay: float) -> LookBuffer:
        """Write the looks of /status in groups every ``delay`` seconds (``LookBuffer``); the bot
        process turns this on and calls ``flush_looks`` when it stops."""
        self._looks = LookBuffer(self, delay)
        return self._looks

    async def flush_looks(self) -> int:
        return await self._looks.flush() if self._looks is not None else 0

    async def status_cards(self, chat_id: int) -> list[StatusCard]:
        """A card for each application linked to the chat, in the order they were linked.

        Read in one small read-only transaction; the number each card shows is remembered as
        this chat's last look only when it changed — right away in a short write, or through the
        ``LookBuffer`` when it is on: most /status calls take no write lock."""
        viewer = chat_viewer(chat_id)
        now = self.clock.now()
        looks = self._looks
        params = card_params(chat_id, now)
        async with self.db.hot() as db:  # on the driver, no ORM (services.reads.cards, storage.hot)
            rows = await db.all(card_reads.CARDS, params)
            numbers = await self._numbers_of(db, rows)
            if numbers is None:  # a queue at a version not kept here: count them live (one snapshot)
                rows = await db.all(card_reads.CARDS_COUNTED, params)
                numbers = [1 + row.ahead if row.status == AppStatus.QUEUED else None for row in rows]
            cards = []
            for row, number in zip(rows, numbers, strict=True):
                look = looks.get(row.id, viewer) if looks is not None else None
                if look is None and row.look_number is not None:
                    look = (row.look_number, row.look_at)
                cards.append(await _card(db, now, row, number, look))
        # (application id, the number it shows now) of the cards whose number moved
        changed = [(c.application_id, n) for c in cards if (n := c.queue_number) is not None and n != c.previous_number]
        if changed and looks is not None:
            for app_id, number in changed:
                looks.add(app_id, viewer, number, now)
        elif changed:
            async with self.unit(viewer, with_calendar=False) as ctx:
                for app_id, number in changed:
                    await queue.record_look(ctx, app_id, viewer, number)
        return cards

    async def _numbers_of(self, db: HotReader, rows: list[Any]) -> list[int | None] | None:
        """The queue numbers of the cards' rows from the rankings at their queues' versions
        (None for an application not waiting), or None when one is not to be had there."""
        out: list[int | None] = []
        for row in rows:
            if row.status != AppStatus.QUEUED:
                out.append(None)
                continue
            number = await self.queue_numbers.number(db, (row.district_id, row.birth_year), row.queue_version, row.id)
            if number is None:
                return None
            out.append(number)
        return out

    async def chat_referral(self, chat_id: int, app_id: int) -> int:
        """The live, not yet used referral of a linked application (``NotLinked`` for an
        application this chat has not linked, ``ReferralNotFound`` when it holds none now: the
        button was pressed after an admission or an annulment)."""
        async with self.reading(with_calendar=False, small=True) as ctx:
            app = await linked_application(ctx, chat_id, app_id)
            referral_id = (await ctx.session.execute(
                select(Referral.id).where(Referral.application_id == app.id,
                                          Referral.status == ReferralStatus.ISSUED))).scalar_one_or_none()
        if referral_id is None or app.status != AppStatus.REFERRED:
            raise ReferralNotFound()
        return referral_id

    async def status_history(self, chat_id: int, app_id: int) -> HistoryView:
        """The moves of a linked application's number (``NotLinked`` for any other)."""
        async with self.reading(with_calendar=False, small=True) as ctx:
            app = await linked_application(ctx, chat_id, app_id)
            return await history(ctx, app)
