"""Facade part for claiming a seat from a chat: the choices open to a linked application, the
preview of one seat, and the claim itself. Every call checks again that the chat has linked the
application (``linked_application``): a button's data come from the client and may be forged,
replayed from another chat or stale."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from services import offers
from services.calendar import WorkingCalendar
from services.context import Ctx
from services.directory import KindergartenInfo
from services.errors import SeatNotFound
from services.facade import FacadeBase, is_row_id, linked_application
from services.reads import seats as seat_reads
from services.validation import mask_iin
from storage.models import Application, Group, Kindergarten
from storage.vocab import AppStatus


@dataclass(frozen=True)
class SeatChoice:
    """Seats of one group reachable the same way, shown as one button (the first seat's id)."""

    seat_id: int
    kindergarten: KindergartenInfo
    group_name: str
    language: str
    via: str  # offers.VIA_OFFER | VIA_OPEN | VIA_STATE_ORDER
    expires_at: dt.datetime | None
    count: int


@dataclass(frozen=True)
class ClaimChoices:
    application_id: int
    number: str
    child_iin_masked: str
    waiting: bool
    choices: list[SeatChoice]
    window_open: bool
    next_window_at: dt.datetime | None  # when claims are accepted next, if not now
    window_hours: tuple[str, str] = ("09:00", "20:00")  # the profile's claim window, local time


@dataclass(frozen=True)
class ClaimPreview:
    application_id: int
    number: str
    child_iin_masked: str
    seat_id: int
    kindergarten: KindergartenInfo
    group_name: str
    language: str
    via: str
    showup_due_at: dt.datetime
    docs_due_at: dt.datetime | None
    offer_expires_at: dt.datetime | None
    twins: list[str]  # other application numbers claimed together (a batch of twins)


@dataclass(frozen=True)
class IssuedReferral:
    referral_id: int
    number: str
    kindergarten: KindergartenInfo
    group_name: str
    showup_due_at: dt.datetime
    docs_due_at: dt.datetime | None


async def _group_names(ctx: Ctx, group_ids: set[int]) -> dict[int, Group]:
    if not group_ids:
        return {}
    rows = (await ctx.session.execute(select(Group).where(Group.id.in_(group_ids)))).scalars()
    return {g.id: g for g in rows}


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _merge(seats: Sequence[tuple[int, int | None, str, str, KindergartenInfo, str, dt.datetime | None]]
           ) -> list[SeatChoice]:
    """Seats (id, group id, language, via, kindergarten, group name, expires at), in the order to
    show them, as one choice per group and way (an offer: one each)."""
    merged: dict[tuple[int | None, str], SeatChoice] = {}
    for seat_id, group_id, language, via, kg, group_name, expires_at in seats:
        key = (-seat_id, via) if via == offers.VIA_OFFER else (group_id, via)
        if key in merged:
            prev = merged[key]
            merged[key] = SeatChoice(prev.seat_id, prev.kindergarten, prev.group_name, prev.language,
                                     prev.via, prev.expires_at, prev.count + 1)
            continue
        merged[key] = SeatChoice(seat_id, kg, group_name, language, via, expires_at, 1)
    order = {offers.VIA_OFFER: 0, offers.VIA_OPEN: 1, offers.VIA_STATE_ORDER: 2}
    return sorted(merged.values(), key=lambda c: (order.get(c.via, 9), c.kindergarten.code, c.seat_id))


def _window(calendar: WorkingCalendar, now: dt.datetime, open_minute: int,
            close_minute: int) -> tuple[bool, dt.datetime | None, tuple[str, str]]:
    window_open = calendar.in_window(now, open_minute, close_minute)
    next_at = None if window_open else calendar.next_window_open(now, open_minute, close_minute)
    return window_open, next_at, (_hhmm(open_minute), _hhmm(close_minute))


async def _choices(ctx: Ctx, app: Application, *, state_order_only: bool) -> ClaimChoices:
    seats = await offers.seats_open_to(ctx, app, state_order_only=state_order_only)
    groups = await _group_names(ctx, {s.seat.group_id for s in seats})
    choices = _merge([(s.seat.id, s.seat.group_id, s.seat.language, s.via, KindergartenInfo.of(s.kindergarten),
                       g.name if (g := groups.get(s.seat.group_id)) else "", s.expires_at) for s in seats])
    profile = await ctx.profile(app.district_id)
    window_open, next_at, hours = _window(ctx.calendar, ctx.now, profile.window_open_minute,
                                          profile.window_close_minute)
    return ClaimChoices(app.id, app.number, mask_iin(app.child_iin), app.status == AppStatus.QUEUED,
                        choices, window_open, next_at, hours)


def _state_order_screen(linked: seat_reads.LinkedSeats, calendar: WorkingCalendar, now: dt.datetime) -> ClaimChoices:
    """/seats for one linked application: its state-order seats (``services.reads.seats``) and its
    profile's claim window."""
    seats = [(s.seat_id, s.group_id, s.language, offers.VIA_STATE_ORDER, s.kindergarten, s.group_name, None)
             for s in linked.seats]
    window_open, next_at, hours = _window(calendar, now, linked.rules.window_open_minute,
                                          linked.rules.window_close_minute)
    return ClaimChoices(linked.application_id, linked.number, mask_iin(linked.child_iin),
                        linked.status == AppStatus.QUEUED, _merge(seats), window_open, next_at, hours)


class ClaimFacade(FacadeBase):
    async def claim_choices(self, chat_id: int, application_id: int) -> ClaimChoices:
        """What this linked application may claim now: its offer, seats open to its birth year,
        and state-order seats of private kindergartens (age 3+)."""
        async with self.reading(small=True) as ctx:
            app = await linked_application(ctx, chat_id, application_id)
            return await _choices(ctx, app, state_order_only=False)

    async def state_order_choices(self, chat_id: int) -> list[ClaimChoices]:
        """For each application linked to the chat: the state-order seats open to it (none to an
        application not waiting). Two hot reads (``services.reads.seats``)."""
        now = self.clock.now()
        async with self.db.hot() as db:
            found = await seat_reads.read(db, chat_id, now)
        if found is None:  # a district without a profile row (see seat_reads.read)
            return await self._state_order_choices_read(chat_id)
        linked, calendar = found
        return [_state_order_screen(one, calendar, now) for one in linked]

    async def _state_order_choices_read(self, chat_id: int) -> list[ClaimChoices]:
        """``state_order_choices`` through the ORM and ``offers.state_order_seats``'s rule (the
        reference the hot read is tested against: ``services.reads.seats.reference``)."""
        async with self.reading(small=True) as ctx:
            return [_state_order_screen(one, ctx.calendar, ctx.now) for one in await seat_reads.reference(ctx, chat_id)]

    async def claim_preview(self, chat_id: int, application_id: int, seat_id: int) -> ClaimPreview:
        """Every rule of the claim checked, nothing changed: the kindergarten, the group and the
        deadlines the referral would have. Raises the rule's error (outside the window, taken...)."""
        async with self.reading(small=True) as ctx:
            app = await linked_application(ctx, chat_id, application_id)
            if not is_row_id(seat_id):
                raise SeatNotFound()
            plan = await offers.plan_claim(ctx, app.number, seat_id)
            group = (await _group_names(ctx, {plan.seat.group_id})).get(plan.seat.group_id)
            twins: list[str] = []
            for offer in plan.offers:
                if offer.application_id != app.id:
                    other = await ctx.session.get(Application, offer.application_id)
                    if other is not None:
                        twins.append(other.number)
            own_offer = next((o for o in plan.offers if o.application_id == app.id), None)
            return ClaimPreview(
                app.id, app.number, mask_iin(app.child_iin), plan.seat.id, KindergartenInfo.of(plan.kindergarten),
                group.name if group else "", plan.seat.language, plan.via, plan.showup_due_at,
                plan.docs_due_at, own_offer.expires_at if own_offer else None, twins)

    async def claim_seat(self, chat_id: int, user_id: int, application_id: int,
                         seat_id: int) -> list[IssuedReferral]:
        """Take the seat and issue the referral, confirmed by this Telegram user. A second press,
        a lost race or a passed window raises and changes nothing."""
        async with self.unit(f"telegram:{user_id}") as ctx:
            app = await linked_application(ctx, chat_id, application_id)
            if not is_row_id(seat_id):
                raise SeatNotFound()
            referrals = await offers.claim(ctx, app.number, seat_id, f"telegram:{user_id}")
            out = []
            for ref in referrals:
                kg = await ctx.session.get(Kindergarten, ref.kindergarten_id)
                group = await ctx.session.get(Group, ref.group_id)
                owner = app if ref.application_id == app.id else await ctx.session.get(Application, ref.application_id)
                assert kg is not None and owner is not None
                out.append(IssuedReferral(ref.id, owner.number, KindergartenInfo.of(kg), group.name if group else "",
                                          ref.showup_due_at, ref.docs_due_at))
            return out
