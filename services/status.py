"""The status screen (DESIGN.md §3 "Status"): one card per linked application, the history of its
queue number, and a forecast of when the turn may come at the recent pace.

No aiogram here: the cards are plain dataclasses that the bot layer renders. The viewer of a chat
is ``chat:<id>``; a card records the number this viewer saw (only when it changed, like
``Kezek.queue_view``), so the next card shows the move since then and its causes."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from sqlalchemy import select

from services import queue
from services.calendar import ALMATY
from services.chats import chat_viewer
from services.context import Ctx
from services.directory import KindergartenInfo
from services.facade import FacadeBase, linked_application
from services.validation import mask_iin
from storage.models import (
    Application,
    ApplicationPreference,
    AppStatus,
    ChatLink,
    DocsState,
    Kindergarten,
    Referral,
)

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
    forecast: Forecast | None = None

    @property
    def delta(self) -> int | None:
        if self.queue_number is None or self.previous_number is None:
            return None
        return self.queue_number - self.previous_number

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


_PREFERRED = (select(Kindergarten.code, Kindergarten.name_ru, Kindergarten.name_kk)
              .join(ApplicationPreference, ApplicationPreference.kindergarten_id == Kindergarten.id))


async def _preferred(ctx: Ctx, app_id: int) -> list[KindergartenInfo]:
    rows = await ctx.session.execute(_PREFERRED.where(ApplicationPreference.application_id == app_id)
                                     .order_by(ApplicationPreference.rank))
    return [KindergartenInfo(*r) for r in rows.all()]


def _local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(ALMATY).date()


async def forecast_for(ctx: Ctx, app: Application, number: int) -> Forecast:
    """At the pace of the queue ahead over the last 90 days (or since the application joined)."""
    since = max(ctx.now - dt.timedelta(days=FORECAST_DAYS), app.created_at)
    days = (ctx.now - since).total_seconds() / 86400
    net = sum((await queue.move_causes(ctx.session, app, since)).values()) if days >= FORECAST_MIN_DAYS else 0
    not_before = None
    if app.stoplist_until is not None and app.stoplist_until > ctx.now:
        not_before = _local_day(app.stoplist_until)
    return make_forecast(number, net, _local_day(ctx.now), days, not_before)


async def status_card(ctx: Ctx, app_number: str, viewer: str) -> StatusCard:
    """The card of one application for ``viewer`` (read only: the caller records the look when
    the number changed)."""
    view = await queue.view(ctx, app_number, viewer, with_preferred=False)  # the names are read below
    app = view.application
    until: dt.datetime | None = None
    docs_due_at: dt.datetime | None = None
    referral_kg: KindergartenInfo | None = None
    if view.state == "stop_listed":
        until = app.stoplist_until
    elif view.state == "offer_open" and view.open_offers:
        until = view.open_offers[0].expires_at
    referral: Referral | None = view.referral
    if referral is not None:
        if view.state == AppStatus.REFERRED:
            until = referral.showup_due_at
            if referral.docs_state == DocsState.PENDING:
                docs_due_at = referral.docs_due_at
        kg = await ctx.session.get(Kindergarten, referral.kindergarten_id)
        if kg is not None:
            referral_kg = KindergartenInfo.of(kg)
    forecast = None
    if view.number is not None and view.state in ("waiting", "stop_listed"):
        forecast = await forecast_for(ctx, app, view.number)
    return StatusCard(
        application_id=app.id, number=app.number, child_iin_masked=mask_iin(app.child_iin),
        district_name_ru=view.district.name_ru, district_name_kk=view.district.name_kk,
        birth_year=app.birth_year, status=app.status, state=view.state, privilege=app.privilege,
        any_kindergarten=app.any_kindergarten,
        preferred=[] if app.any_kindergarten else await _preferred(ctx, app.id),
        queue_number=view.number, previous_number=view.previous, previous_at=view.previous_at,
        causes=dict(view.causes), until=until, docs_due_at=docs_due_at,
        referral_kindergarten=referral_kg, forecast=forecast,
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


class StatusFacade(FacadeBase):
    async def status_cards(self, chat_id: int) -> list[StatusCard]:
        """A card for each application linked to the chat, in the order they were linked.

        Read in one read-only transaction; the number each card shows is remembered as this chat's
        last look in a short write afterwards, only when it changed: most /status calls take no
        write lock (on SQLite a write lock per /status queued the instances behind each other)."""
        viewer = chat_viewer(chat_id)
        async with self.reading(with_calendar=False) as ctx:
            numbers = (await ctx.session.execute(
                select(Application.number).join(ChatLink, ChatLink.application_id == Application.id)
                .where(ChatLink.chat_id == chat_id).order_by(ChatLink.linked_at, Application.number)
            )).scalars().all()
            cards = [await status_card(ctx, n, viewer) for n in numbers]
        changed = [c for c in cards if c.queue_number is not None and c.queue_number != c.previous_number]
        if changed:
            async with self.unit(viewer, with_calendar=False) as ctx:
                for card in changed:
                    await queue.record_look(ctx, card.application_id, viewer, card.queue_number)  # type: ignore[arg-type]
        return cards

    async def status_history(self, chat_id: int, app_id: int) -> HistoryView:
        """The moves of a linked application's number (``NotLinked`` for any other)."""
        async with self.reading(with_calendar=False) as ctx:
            app = await linked_application(ctx, chat_id, app_id)
            return await history(ctx, app)
