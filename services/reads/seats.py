"""/seats in one round trip: the state-order seats open to each application a chat has linked, with
its district's rule profile (``read``); and ``reference``, the same read through the ORM and the
rules' own functions (``Ctx.profile``, ``offers.state_order_seats``), which it must agree with.

What the statement writes out in SQL: the state-order seats of a district (the open seats of its
private kindergartens: ``offers.state_order_seats``) and the profile the district follows (through
``services.reads.profile``, which takes ``Ctx.profile``'s rule from ``services.context``). The age
rule and the claim window are applied in Python, by the rules' own functions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, literal_column, select
from sqlalchemy.orm import aliased

from services import offers
from services.calendar import WorkingCalendar
from services.context import Ctx
from services.directory import KindergartenInfo
from services.reads import profile
from storage.hot import Hot, HotReader, Record, json_rows, json_rows_of
from storage.models import Application, CalendarDay, ChatLink, Group, Kindergarten, Seat
from storage.vocab import AppStatus, SeatStatus


@dataclass(frozen=True)
class StateOrderSeat:
    seat_id: int
    group_id: int
    language: str
    kindergarten: KindergartenInfo
    group_name: str


@dataclass(frozen=True)
class LinkedSeats:
    """An application linked to the chat, with what /seats shows of it."""

    application_id: int
    number: str
    child_iin: str
    status: str
    rules: Record  # its district's rule profile (a ``profile.Rules``)
    # The state-order seats open to it now (none unless it waits and is old enough), by
    # kindergarten code and seat id.
    seats: tuple[StateOrderSeat, ...]


def _statement() -> Any:
    """Each application linked to the chat (in the order they were linked) with its district's
    profile and, for a waiting one, the open state-order seats of its district as ``json_rows`` of
    (seat id, group id, language, kindergarten code, names, address, group name). A district whose
    profile is missing (not even the default one) gives NULLs."""
    A, S, K, G = Application, Seat, aliased(Kindergarten), aliased(Group)
    seats = (select(json_rows(S.id, S.group_id, S.language, K.code, K.name_ru, K.name_kk, K.address, G.name))
             .select_from(S).join(K, K.id == S.kindergarten_id).outerjoin(G, G.id == S.group_id)
             .where(S.district_id == A.district_id, S.status == SeatStatus.OPEN, S.private.is_(True))
             .scalar_subquery())
    return (select(A.id, A.number, A.child_iin, A.status, A.birth_date, *profile.columns(),
                   case((A.status == AppStatus.QUEUED, seats), else_=literal_column("NULL")).label("seats"))
            .join(ChatLink, ChatLink.application_id == A.id)
            .outerjoin(*profile.joined(A.district_id))
            .where(ChatLink.chat_id == bindparam("chat_id"))
            .order_by(ChatLink.linked_at, A.id))


STATE_ORDER = Hot(_statement())
CALENDAR = Hot(select(CalendarDay.day, CalendarDay.working, CalendarDay.name))


def _by_kindergarten(seats: list[StateOrderSeat]) -> tuple[StateOrderSeat, ...]:
    return tuple(sorted(seats, key=lambda s: (s.kindergarten.code, s.seat_id)))


async def read(db: HotReader, chat_id: int, now: dt.datetime) -> tuple[list[LinkedSeats], WorkingCalendar] | None:
    """The chat's linked applications and the calendar (the claim window's working days), in two
    hot reads (``STATE_ORDER``, the calendar's overrides; the second only when there is an
    application). None when a district has no profile row: ``reference`` reads it then (the
    default one is made there)."""
    rows = await db.all(STATE_ORDER, {"chat_id": chat_id})
    if not rows:
        return [], WorkingCalendar()  # (nothing to show the window for: the overrides are not read)
    calendar = WorkingCalendar({r.day: (r.working, r.name) for r in await db.all(CALENDAR)})
    out: list[LinkedSeats] = []
    for r in rows:
        rules = profile.rules_of(r)
        if rules is None:
            return None
        seats: list[StateOrderSeat] = []
        if r.status == AppStatus.QUEUED and offers.old_enough_for_private(r.birth_date, calendar, now,
                                                                          rules.private_min_age_years):
            seats = [StateOrderSeat(seat_id, group_id, language,
                                    KindergartenInfo(code, name_ru, name_kk, address or ""), group_name or "")
                     for seat_id, group_id, language, code, name_ru, name_kk, address, group_name
                     in json_rows_of(r.seats)]
        out.append(LinkedSeats(r.id, r.number, r.child_iin, r.status, rules, _by_kindergarten(seats)))
    return out, calendar


async def reference(ctx: Ctx, chat_id: int) -> list[LinkedSeats]:
    """``read``'s applications through the ORM: ``Ctx.profile`` and ``offers.state_order_seats``."""
    apps = (await ctx.session.execute(
        select(Application).join(ChatLink, ChatLink.application_id == Application.id)
        .where(ChatLink.chat_id == chat_id).order_by(ChatLink.linked_at, Application.id))).scalars().all()
    out = []
    for app in apps:
        seats = []
        for s in await offers.state_order_seats(ctx, app):
            group = await ctx.session.get(Group, s.seat.group_id)
            seats.append(StateOrderSeat(s.seat.id, s.seat.group_id, s.seat.language,
                                        KindergartenInfo.of(s.kindergarten), group.name if group else ""))
        rules = profile.rules_from(await ctx.profile(app.district_id))
        out.append(LinkedSeats(app.id, app.number, app.child_iin, app.status, rules, _by_kindergarten(seats)))
    return out
