"""The facade's part for the registry, the operators and the service's own jobs (``RegistryFacade``):
the full status of one application (its queue, number, open offers and every referral with its
deadlines), referrals and offers by id, the all-or-nothing load of calendar days, the calendar
read back, the rule profiles' claim windows (the scheduler), the outbox backlog (metrics, health)
and the sandbox's example application (``kezek demo``). Every front end comes in through the facade
(ARCHITECTURE.md); none opens a unit of work itself.

No personal data leaves here: the registry sent the child's IIN, name and the parent's contacts and
keeps them; a status names the application by its number only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import literal, select

from services import directory, queue
from services import parsing as p
from services.context import Ctx
from services.errors import (
    DuplicateInBatch,
    InvalidField,
    KezekError,
    MissingField,
    ReferralNotFound,
    RowErrors,
)
from services.facade import FacadeBase, is_row_id
from services.health import Due, due_backlog
from storage.models import Application, ApplicationPreference, Group, Kindergarten, Offer, Referral, RuleProfile, Seat
from storage.vocab import AppStatus, KindergartenKind, OfferStatus, ReferralStatus


@dataclass(frozen=True)
class OfferInfo:
    id: int
    seat_id: int
    application: str  # the application number
    kindergarten: str  # its code
    birth_year: int
    language: str
    made_at: dt.datetime
    expires_at: dt.datetime
    status: str


@dataclass(frozen=True)
class ReferralInfo:
    id: int
    application: str
    kindergarten: str
    group: str
    language: str
    via: str  # offer | open | state_order
    privilege: str
    status: str  # issued | admitted | annulled
    issued_at: dt.datetime
    showup_due_at: dt.datetime
    docs_state: str
    docs_due_at: dt.datetime | None
    closed_at: dt.datetime | None
    annul_reason: str | None


@dataclass
class ApplicationStatus:
    number: str
    status: str  # queued | referred | admitted | removed | withdrawn
    state: str  # waiting | stop_listed | offer_open | referred | admitted | removed | withdrawn
    district: str  # code
    birth_year: int
    language: str
    privilege: str
    docs_state: str
    queue_number: int | None  # only while waiting
    stoplist_until: dt.datetime | None
    missed_referrals: int
    preferred_kindergartens: list[str]  # empty: any
    submitted_at: dt.datetime
    offers: list[OfferInfo] = field(default_factory=list)  # open offers
    referral: ReferralInfo | None = None  # the live one (issued or admitted)
    referrals: list[ReferralInfo] = field(default_factory=list)  # all, latest first


_OFFERS = (select(Offer, Seat, Kindergarten.code)
           .join(Seat, Seat.id == Offer.seat_id)
           .join(Kindergarten, Kindergarten.id == Seat.kindergarten_id))

_REFERRALS = (select(Referral, Kindergarten.code, Group.name, Group.language)
              .join(Kindergarten, Kindergarten.id == Referral.kindergarten_id)
              .join(Group, Group.id == Referral.group_id))


def _offer(offer: Offer, seat: Seat, kg_code: str, number: str) -> OfferInfo:
    return OfferInfo(offer.id, seat.id, number, kg_code, seat.birth_year, seat.language,
                     offer.made_at, offer.expires_at, offer.status)


def _referral(ref: Referral, kg_code: str, group: str, language: str, number: str) -> ReferralInfo:
    return ReferralInfo(
        id=ref.id, application=number, kindergarten=kg_code, group=group, language=language,
        via=ref.via, privilege=ref.privilege, status=ref.status, issued_at=ref.issued_at,
        showup_due_at=ref.showup_due_at, docs_state=ref.docs_state, docs_due_at=ref.docs_due_at,
        closed_at=ref.closed_at, annul_reason=ref.annul_reason,
    )


async def application_status(ctx: Ctx, number: str) -> ApplicationStatus:
    """The status of one application as the registry sees it (``ApplicationNotFound``)."""
    view = await queue.view(ctx, number)
    app = view.application
    offers = [_offer(o, s, code, app.number) for o, s, code in (await ctx.session.execute(
        _OFFERS.where(Offer.application_id == app.id, Offer.status == OfferStatus.OPEN).order_by(Offer.id))).all()]
    referrals = [_referral(r, code, name, lang, app.number) for r, code, name, lang in (
        await ctx.session.execute(_REFERRALS.where(Referral.application_id == app.id)
                                  .order_by(Referral.issued_at.desc(), Referral.id.desc()))).all()]
    live = next((r for r in referrals if r.status in ReferralStatus.LIVE), None)
    stoplisted = app.stoplist_until if app.stoplist_until is not None and app.stoplist_until > ctx.now else None
    return ApplicationStatus(
        number=app.number, status=app.status, state=view.state, district=view.district.code,
        birth_year=app.birth_year, language=app.language, privilege=app.privilege,
        docs_state=app.docs_state, queue_number=view.number, stoplist_until=stoplisted,
        missed_referrals=app.missed_referrals, preferred_kindergartens=list(view.preferred),
        submitted_at=app.submitted_at, offers=offers, referral=live, referrals=referrals,
    )


async def ping(ctx: Ctx) -> None:
    """A trivial read: the database answers (the health check)."""
    await ctx.session.execute(select(literal(1)))


async def referral_info(ctx: Ctx, referral_id: int) -> ReferralInfo:
    """One referral by id (``ReferralNotFound``, also for ids that cannot be row ids)."""
    if not is_row_id(referral_id):
        raise ReferralNotFound()
    row = (await ctx.session.execute(
        _REFERRALS.add_columns(Application.number).join(Application, Application.id == Referral.application_id)
        .where(Referral.id == referral_id))).one_or_none()
    if row is None:
        raise ReferralNotFound()
    ref, code, name, lang, number = row
    return _referral(ref, code, name, lang, number)


async def offers_info(ctx: Ctx, offer_ids: Sequence[int]) -> list[OfferInfo]:
    """Offers by id, in the order given (the offers a publication made)."""
    if not offer_ids:
        return []
    rows = (await ctx.session.execute(
        _OFFERS.add_columns(Application.number).join(Application, Application.id == Offer.application_id)
        .where(Offer.id.in_(list(offer_ids))))).all()
    by_id = {o.id: _offer(o, s, code, number) for o, s, code, number in rows}
    return [by_id[i] for i in offer_ids if i in by_id]


# --- calendar days (a write: one unit of work for the whole list) --------------------------------

def calendar_day(row: p.Row) -> tuple[dt.date, bool, str]:
    """One operator's day: (day, working, name) or the ``KezekError`` of its first bad field."""
    if not isinstance(row, dict):
        raise InvalidField(field="*", reason="object")
    day = p.date(row, "day")
    if row.get("working") is None or row.get("working") == "":
        raise MissingField(field="working")
    working = p.boolean(row, "working", default=False)
    name = p.text(row, "name", max_len=200, required=False)
    return day, working, name


async def set_calendar_days(ctx: Ctx, rows: Sequence[p.Row]) -> int:
    """Operators' decrees (moved days off, working weekends), all or nothing: every row is
    checked first (``BulkRejected`` with the first bad rows' index and a count), then all are written."""
    parsed: list[tuple[dt.date, bool, str]] = []
    errors = RowErrors()
    seen: set[dt.date] = set()
    async for index, row in p.in_turns(rows):
        try:
            item = calendar_day(row)
        except KezekError as exc:
            errors.add(index, exc)
            continue
        if item[0] in seen:
            errors.add(index, DuplicateInBatch(field="day", value=item[0].isoformat()))
        seen.add(item[0])
        parsed.append(item)
    errors.raise_any()
    for day, working, name in parsed:
        await directory.set_calendar_day(ctx, day, working, name)
    return len(parsed)


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass of this module as a plain dict (nested ones included)."""
    from dataclasses import asdict

    return asdict(obj)


# --- the facade ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CalendarDayInfo:
    day: dt.date
    working: bool
    name: str | None  # a day off's name in the language asked for (None: a weekend or a working day)


@dataclass(frozen=True)
class SandboxExample:
    """The application a newcomer links in the sandbox, and the seat to publish for it."""

    number: str
    child_iin: str
    kindergarten: str
    birth_year: int
    language: str


class RegistryFacade(FacadeBase):
    async def application_status(self, number: str) -> ApplicationStatus:
        async with self.reading(with_calendar=False) as ctx:
            return await application_status(ctx, number)

    async def referral_info(self, referral_id: int) -> ReferralInfo:
        async with self.reading(with_calendar=False) as ctx:
            return await referral_info(ctx, referral_id)

    async def offers_info(self, offer_ids: Sequence[int]) -> list[OfferInfo]:
        async with self.reading(with_calendar=False) as ctx:
            return await offers_info(ctx, offer_ids)

    async def set_calendar_days(self, rows: Sequence[p.Row], actor: str = "operator") -> int:
        async with self.unit(actor) as ctx:
            return await set_calendar_days(ctx, rows)

    async def calendar_days(self, start: dt.date, days: int, lang: str) -> list[CalendarDayInfo]:
        """``days`` days from ``start`` as the working calendar has them (decrees included)."""
        async with self.reading() as ctx:
            out = []
            for i in range(days):
                d = start + dt.timedelta(days=i)
                working = ctx.calendar.is_working_day(d)
                out.append(CalendarDayInfo(d, working, None if working else ctx.calendar.holiday_name(d, lang)))
            return out

    async def profile_windows(self) -> set[tuple[int, int]]:
        """The distinct claim windows (open, close minute of the local day) of the rule profiles."""
        async with self.reading(with_calendar=False) as ctx:
            rows = (await ctx.session.execute(
                select(RuleProfile.window_open_minute, RuleProfile.window_close_minute).distinct())).all()
        return {(int(o), int(c)) for o, c in rows}

    async def outbox_backlog(self) -> dict[str, Due]:
        """What waits for the senders now, per channel (services/health.py), in one read."""
        async with self.reading(with_calendar=False) as ctx:
            return await due_backlog(ctx)

    async def sandbox_example(self, phone: str | None = None) -> SandboxExample:
        """The application a newcomer should link: the head of a queue (so that one published seat
        makes it "your turn"), without a privilege or a twin; with ``phone`` put on it (to link by
        the contact button). ``LookupError`` when no application waits."""
        from sqlalchemy import func, update

        A = Application
        async with self.unit("demo", with_calendar=False) as ctx:
            s = ctx.session
            head = func.row_number().over(partition_by=(A.district_id, A.birth_year), order_by=queue.QUEUE_KEY)
            ranked = select(A.id, head.label("place")).where(A.status == AppStatus.QUEUED).subquery()
            apps = (await s.execute(select(A).join(ranked, ranked.c.id == A.id).where(
                ranked.c.place == 1, A.twin_group.is_(None), A.stoplist_until.is_(None))
                .order_by(A.priv_rank.desc(), A.number))).scalars().all()
            if not apps:
                raise LookupError("no waiting application")
            app = apps[0]
            if phone:
                await s.execute(update(A).where(A.id == app.id).values(phone=phone))
            kgs = (await s.execute(select(Kindergarten).where(
                Kindergarten.district_id == app.district_id, Kindergarten.kind == KindergartenKind.STATE)
                .order_by(Kindergarten.code))).scalars().all()
            preferred = list((await s.execute(
                select(Kindergarten.code)
                .join(ApplicationPreference, ApplicationPreference.kindergarten_id == Kindergarten.id)
                .where(ApplicationPreference.application_id == app.id)
                .order_by(ApplicationPreference.rank))).scalars())
            kg = next((k for k in kgs if k.code in preferred), None) if preferred else None
            kg = kg or next((k for k in kgs if app.language in k.languages.split(",")), kgs[0])
            language = app.language if app.language in kg.languages.split(",") else kg.languages.split(",")[0]
            return SandboxExample(app.number, app.child_iin, kg.code, app.birth_year, language)
