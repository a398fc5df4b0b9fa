"""Seats, offers ("your turn has come"), the claim window, the hand-over to everyone, and claims.

* Publishing free seats offers each to the first waiting application of that queue (district,
  birth year) that is not stop-listed, has no open offer, and wants that kindergarten or any; the
  profile may interleave general applications after each first-priority one and keeps twins
  together. Seats of private kindergartens under the state order are open at once to every
  waiting child of the district aged 3+ (queue number does not matter).
* An offer lives until the end of the first claim window that ends after it was made (a profile
  may give more windows). Then the seat is open to every waiting application of the queue.
* A claim needs an explicit confirmation, happens inside a window only, and issues the referral
  atomically with taking the seat (conditional updates: the loser of a race changes nothing).

Why one module of this size: offering, the open seats and the claim's plan are one rule (who
may take which seat when) read by every flow that frees or takes a seat; its ORM reference
for the fast reads (services/reads) lives here too."""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, insert, literal, or_, select, text, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from services import parsing as p
from services.calendar import WorkingCalendar
from services.context import Ctx
from services.errors import (
    ApplicationClosed,
    ConfirmationRequired,
    InvalidField,
    NotEligibleForSeat,
    NotWaiting,
    OfferExpired,
    OutsideClaimWindow,
    SeatNotAvailable,
    SeatNotFound,
    StopListed,
    TooYoungForPrivate,
    UnknownKindergarten,
)
from services.notices import (
    NoticeKind,
    OfferClosed,
    OfferMade,
    ReferralIssued,
    SeatsOpened,
)
from services.queue import REFERRAL, WITHDRAWN, get_application, queue_event, release_offers
from storage.models import (
    Application,
    ApplicationPreference,
    Group,
    Kindergarten,
    Offer,
    QueueState,
    Referral,
    RuleProfile,
    Seat,
    UTCDateTime,
)
from storage.vocab import AppStatus, DocsState, KindergartenKind, OfferStatus, Privilege, SeatStatus

A = Application

VIA_OFFER = "offer"  # the seat was offered to this application in queue order
VIA_OPEN = "open"  # a passed seat, open to the whole birth year
VIA_STATE_ORDER = "state_order"  # a private kindergarten under the state order


@dataclass
class PublishResult:
    seat_ids: list[int]
    offers: list[tuple[int, int, str]]  # (offer id, seat id, application number)
    private: bool


# --- publishing and offering ---------------------------------------------------------------------

def seat_birth_years(now: dt.datetime) -> tuple[int, int]:
    """The birth years seats may be published for at ``now`` (children under school age)."""
    return now.year - 8, now.year


async def publish_seats(ctx: Ctx, row: p.Row) -> PublishResult:
    kg_code = p.code(row, "kindergarten")
    lo, hi = seat_birth_years(ctx.now)
    birth_year = p.integer(row, "birth_year", lo=lo, hi=hi)
    language = p.choice(row, "language", ("ru", "kk"))
    count = p.integer(row, "count", lo=1, hi=500)
    found = (await ctx.session.execute(
        select(Kindergarten, Group).outerjoin(Group, and_(
            Group.kindergarten_id == Kindergarten.id, Group.birth_year == birth_year,
            Group.language == language)).where(Kindergarten.code == kg_code))).one_or_none()
    if found is None:
        raise UnknownKindergarten(field="kindergarten", value=kg_code)
    kg, group = found
    if language not in kg.languages.split(","):
        raise InvalidField(field="language", reason="not_taught", options=kg.languages)
    if group is None:
        group = Group(kindergarten_id=kg.id, birth_year=birth_year, language=language,
                      name=f"{birth_year}-{language}")
        ctx.session.add(group)
        await ctx.session.flush()
    private = kg.kind == KindergartenKind.PRIVATE
    result = await ctx.session.execute(insert(Seat).returning(Seat.id), [{
        "kindergarten_id": kg.id, "group_id": group.id, "district_id": kg.district_id,
        "birth_year": birth_year, "language": language, "private": private,
        "status": SeatStatus.OPEN if private else SeatStatus.FREE, "published_at": ctx.now,
        "opened_at": ctx.now if private else None,
    } for _ in range(count)])
    seat_ids = [r[0] for r in result.all()]
    ctx.audit("seats.publish", "kindergarten", kg.id, birth_year=birth_year, language=language,
              count=count, seat_ids=seat_ids)
    offers: list[tuple[int, int, str]] = []
    if not private:
        offers = await _fill_queue(ctx, kg.id, kg.district_id, birth_year, seat_ids)
    return PublishResult(seat_ids, offers, private)


async def fill_free_seats(ctx: Ctx, seat_ids: list[int] | None = None) -> list[tuple[int, int, str]]:
    """Offer free seats (all of them, or the given ones) to whoever is first now."""
    q = select(Seat.id, Seat.kindergarten_id, Seat.district_id, Seat.birth_year).where(
        Seat.status == SeatStatus.FREE, Seat.private.is_(False)).order_by(Seat.id)
    if seat_ids is not None:
        if not seat_ids:
            return []
        q = q.where(Seat.id.in_(seat_ids))
    groups: dict[tuple[int, int, int], list[int]] = {}
    for sid, kg_id, district_id, year in (await ctx.session.execute(q)).all():
        groups.setdefault((kg_id, district_id, year), []).append(sid)
    made: list[tuple[int, int, str]] = []
    for (kg_id, district_id, year), ids in groups.items():
        made += await _fill_queue(ctx, kg_id, district_id, year, ids)
    return made


def _eligible(ctx: Ctx, kg_id: int, district_id: int, birth_year: int) -> list[Any]:
    P = ApplicationPreference
    return [
        A.district_id == district_id, A.birth_year == birth_year, A.status == AppStatus.QUEUED,
        or_(A.stoplist_until.is_(None), A.stoplist_until <= ctx.now),
        ~exists().where(Offer.application_id == A.id, Offer.status == OfferStatus.OPEN),
        or_(A.any_kindergarten.is_(True),
            exists().where(P.application_id == A.id, P.kindergarten_id == kg_id)),
    ]


# An application that may be offered a seat: (id, priv_rank, submitted_at, number, twin_group).
_Candidate = Row[int, int, dt.datetime, str, str | None]
_CANDIDATE_COLUMNS = (A.id, A.priv_rank, A.submitted_at, A.number, A.twin_group)


class _Candidates:
    """Eligible applications in queue order, fetched lazily by keyset pages."""

    def __init__(self, ctx: Ctx, filters: list[Any], page: int) -> None:
        self.ctx, self.filters, self.page = ctx, filters, page
        self.buf: deque[_Candidate] = deque()
        self.after: tuple[int, dt.datetime, str] | None = None
        self.done = False

    async def peek(self, used: set[int]) -> _Candidate | None:
        while True:
            while self.buf and self.buf[0].id in used:
                self.buf.popleft()
            if self.buf:
                return self.buf[0]
            if self.done:
                return None
            q = select(*_CANDIDATE_COLUMNS).where(*self.filters)
            if self.after is not None:
                r, s, n = self.after
                q = q.where(tuple_(A.priv_rank, A.submitted_at, A.number) > tuple_(
                    literal(r), literal(s, UTCDateTime()), literal(n)))
            q = q.order_by(A.priv_rank, A.submitted_at, A.number).limit(self.page)
            rows = (await self.ctx.session.execute(q)).all()
            if len(rows) < self.page:
                self.done = True
            if rows:
                last = rows[-1]
                self.after = (last.priv_rank, last.submitted_at, last.number)
            self.buf.extend(rows)


async def _lock_queue(ctx: Ctx, district_id: int, birth_year: int) -> None:
    """Serialise offer-making per queue across processes (SQLite's write lock already does)."""
    if ctx.is_postgres:
        await ctx.session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                  {"k": district_id * 10_000 + birth_year})


_Pick = tuple[_Candidate, int, str | None]  # (candidate, seat id, batch)


class _Picker:
    """Who gets the seats of one queue's fill, in queue order: the first eligible application;
    while the profile's interleave is owed, the first general one instead of a first-priority one;
    twins together when the profile keeps them together (all of them, or none of them now)."""

    def __init__(self, ctx: Ctx, profile: RuleProfile, filters: list[Any], district_id: int, birth_year: int,
                 page: int) -> None:
        self.ctx, self.profile, self.filters = ctx, profile, filters
        self.district_id, self.birth_year = district_id, birth_year
        self.main = _Candidates(ctx, filters, page)
        self.general: _Candidates | None = None
        self.state: QueueState | None = None  # the queue's interleave count, with an interleave
        self.used: set[int] = set()

    async def load_state(self) -> None:
        """The queue's count of general applications owed (made at 0 the first time)."""
        if not self.profile.interleave_general_per_first:
            return
        state = await self.ctx.session.get(QueueState, (self.district_id, self.birth_year))
        if state is None:
            state = QueueState(district_id=self.district_id, birth_year=self.birth_year, general_owed=0)
            self.ctx.session.add(state)
        self.state = state

    async def picks(self, seat_ids: list[int]) -> list[_Pick]:
        remaining = deque(seat_ids)
        picks: list[_Pick] = []
        while remaining:
            cand = await self._next()
            if cand is None:
                break
            members = await self._members(cand, len(remaining))
            if members is None:
                continue
            for m in members:
                self.used.add(m.id)
                picks.append((m, remaining.popleft(), cand.twin_group if len(members) > 1 else None))
            self._count(cand)
        return picks

    async def _next(self) -> _Candidate | None:
        cand = await self.main.peek(self.used)
        if cand is None:
            return None
        state = self.state
        if state is not None and state.general_owed > 0 and cand.priv_rank == Privilege.RANK[Privilege.FIRST]:
            self.general = self.general or _Candidates(
                self.ctx, [*self.filters, A.priv_rank == Privilege.RANK[Privilege.NONE]], 16)
            first_general = await self.general.peek(self.used)
            if first_general is not None:
                return first_general
        return cand

    async def _members(self, cand: _Candidate, room: int) -> list[_Candidate] | None:
        """Who is offered a seat with ``cand`` (itself, or its batch of twins); None: none of them
        now (a twin not eligible, or fewer seats left than twins), and they are passed over."""
        if not (cand.twin_group and self.profile.twins_together):
            return [cand]
        members = await _twins(self.ctx, cand.twin_group, self.filters, self.district_id, self.birth_year)
        if members is None or len(members) > room:
            self.used.update(m.id for m in (members or [cand]))
            self.used.add(cand.id)
            return None
        return members

    def _count(self, cand: _Candidate) -> None:
        """The interleave after an offer to ``cand``: a first-priority one owes the profile's count
        of general ones, a general one pays one back."""
        state = self.state
        if state is None:
            return
        if cand.priv_rank == Privilege.RANK[Privilege.FIRST]:
            state.general_owed = self.profile.interleave_general_per_first
        elif cand.priv_rank == Privilege.RANK[Privilege.NONE] and state.general_owed > 0:
            state.general_owed -= 1


async def _fill_queue(ctx: Ctx, kg_id: int, district_id: int, birth_year: int,
                      seat_ids: list[int]) -> list[tuple[int, int, str]]:
    await _lock_queue(ctx, district_id, birth_year)
    profile = await ctx.profile(district_id)
    expires = ctx.calendar.window_end_after(ctx.now, profile.window_close_minute, profile.offer_windows)
    picker = _Picker(ctx, profile, _eligible(ctx, kg_id, district_id, birth_year), district_id, birth_year,
                     page=max(2 * len(seat_ids), 16))
    await picker.load_state()
    picks = await picker.picks(seat_ids)
    if not picks:
        return []
    return await _make_offers(ctx, kg_id, expires, picks)


async def _make_offers(ctx: Ctx, kg_id: int, expires: dt.datetime, picks: list[_Pick]) -> list[tuple[int, int, str]]:
    """The offers of the picks, their seats offered, the audit and the "your turn" notices."""
    result = await ctx.session.execute(insert(Offer).returning(Offer.id, Offer.seat_id), [{
        "seat_id": seat_id, "application_id": cand.id, "batch": batch, "made_at": ctx.now,
        "expires_at": expires, "status": OfferStatus.OPEN,
    } for cand, seat_id, batch in picks])
    offer_by_seat = {seat_id: offer_id for offer_id, seat_id in result.all()}
    await ctx.session.execute(
        update(Seat).where(Seat.id.in_(list(offer_by_seat)), Seat.status == SeatStatus.FREE)
        .values(status=SeatStatus.OFFERED).execution_options(synchronize_session=False))
    made = []
    for cand, seat_id, batch in picks:
        offer_id = offer_by_seat[seat_id]
        made.append((offer_id, seat_id, cand.number))
        ctx.audit("offer.make", "offer", offer_id, application_id=cand.id, seat_id=seat_id)
        ctx.notify(NoticeKind.TURN_CAME, cand.id, f"offer:{offer_id}", OfferMade(
            offer_id=offer_id, seat_id=seat_id, kindergarten_id=kg_id, expires_at=expires, batch=batch))
    return made


async def _twins(ctx: Ctx, group: str, filters: list[Any], district_id: int,
                 birth_year: int) -> list[_Candidate] | None:
    """The twins of a batch in queue order, or None when one of them may not be offered now."""
    cols = _CANDIDATE_COLUMNS
    waiting = (await ctx.session.execute(select(*cols).where(
        A.twin_group == group, A.district_id == district_id, A.birth_year == birth_year,
        A.status == AppStatus.QUEUED).order_by(A.priv_rank, A.submitted_at, A.number))).all()
    eligible = (await ctx.session.execute(select(*cols).where(A.twin_group == group, *filters))).all()
    if len(eligible) != len(waiting):
        return None
    return list(waiting)


# --- the end of a claim window -------------------------------------------------------------------

async def expire_offers(ctx: Ctx) -> int:
    """Close offers whose window ended; their seats become open to the whole birth year."""
    due = (await ctx.session.execute(select(Offer).where(
        Offer.status == OfferStatus.OPEN, Offer.expires_at <= ctx.now).order_by(Offer.id))).scalars().all()
    opened: dict[tuple[int, int], dt.datetime] = {}
    count = 0
    for offer in due:
        res = cast(CursorResult[Any], await ctx.session.execute(
            update(Offer).where(Offer.id == offer.id, Offer.status == OfferStatus.OPEN)
            .values(status=OfferStatus.EXPIRED, closed_at=offer.expires_at)
            .execution_options(synchronize_session=False)))
        if res.rowcount != 1:
            continue
        count += 1
        seat = await ctx.session.get(Seat, offer.seat_id)
        assert seat is not None
        await ctx.session.execute(
            update(Seat).where(Seat.id == seat.id, Seat.status == SeatStatus.OFFERED)
            .values(status=SeatStatus.OPEN, opened_at=offer.expires_at)
            .execution_options(synchronize_session=False))
        ctx.audit("offer.expire", "offer", offer.id, application_id=offer.application_id, seat_id=seat.id)
        ctx.notify(NoticeKind.OFFER_EXPIRED, offer.application_id, f"offer-expired:{offer.id}",
                   OfferClosed(offer_id=offer.id, seat_id=seat.id))
        key = (seat.district_id, seat.birth_year)
        opened[key] = max(opened.get(key, offer.expires_at), offer.expires_at)
    for (district_id, birth_year), at in opened.items():
        await _announce_open_seats(ctx, district_id, birth_year, at)
    return count


ANNOUNCE_PAGE = 5000  # waiting children read (and their notices written) at a time


async def _announce_open_seats(ctx: Ctx, district_id: int, birth_year: int, at: dt.datetime) -> None:
    seats = (await ctx.session.execute(select(Seat.id).where(
        Seat.status == SeatStatus.OPEN, Seat.private.is_(False), Seat.district_id == district_id,
        Seat.birth_year == birth_year))).scalars().all()
    if not seats:
        return
    # Every waiting child of the queue (a whole city's queue can be tens of thousands): in pages,
    # each page's notices written before the next is read, so memory does not grow with the queue.
    last_id = 0
    while True:
        page = (await ctx.session.execute(select(A.id).where(
            A.district_id == district_id, A.birth_year == birth_year, A.status == AppStatus.QUEUED,
            or_(A.stoplist_until.is_(None), A.stoplist_until <= ctx.now), A.id > last_id,
        ).order_by(A.id).limit(ANNOUNCE_PAGE))).scalars().all()
        for app_id in page:
            ctx.notify(NoticeKind.SEATS_OPEN, app_id,
                       f"seats-open:{district_id}:{birth_year}:{at.isoformat()}:{app_id}",
                       SeatsOpened(district_id=district_id, birth_year=birth_year, seats=len(seats)))
        await ctx.flush()
        if len(page) < ANNOUNCE_PAGE:
            return
        last_id = page[-1]


# --- claims ----------------------------------------------------------------------------------------

@dataclass
class ClaimPlan:
    application: Application
    seat: Seat
    kindergarten: Kindergarten
    profile: RuleProfile
    via: str
    offers: list[Offer]  # the offers this claim closes (twins: all of the batch)
    showup_due_at: dt.datetime
    docs_due_at: dt.datetime | None


def age_on(birth_date: dt.date, day: dt.date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def old_enough_for_private(birth_date: dt.date, calendar: WorkingCalendar, now: dt.datetime, min_age: int) -> bool:
    """The age rule of state-order seats in private kindergartens: ``min_age`` years (the rule
    profile's) on the claim day, Almaty time."""
    return age_on(birth_date, calendar.local_date(now)) >= min_age


def showup_deadline(ctx: Ctx, profile: RuleProfile) -> dt.datetime:
    return ctx.calendar.deadline_after(ctx.calendar.local_date(ctx.now), profile.showup_working_days)


def docs_deadline(ctx: Ctx, profile: RuleProfile) -> dt.datetime:
    """5 working days, never later than the end of the 10th calendar day after the referral."""
    day = ctx.calendar.local_date(ctx.now)
    by_working = ctx.calendar.deadline_after(day, profile.docs_working_days)
    by_calendar = ctx.calendar.end_of_day(day + dt.timedelta(days=profile.docs_calendar_days))
    return min(by_working, by_calendar)


async def plan_claim(ctx: Ctx, app_number: str, seat_id: int, *, lock: bool = False) -> ClaimPlan:
    """Check every rule of a claim without changing anything (also the claim's preview)."""
    app = await get_application(ctx.session, app_number, for_update=lock)
    q = select(Seat).where(Seat.id == seat_id)
    seat = (await ctx.session.execute(q.with_for_update() if lock else q)).scalar_one_or_none()
    if seat is None:
        raise SeatNotFound()
    kg = await ctx.session.get(Kindergarten, seat.kindergarten_id)
    assert kg is not None
    profile = await ctx.profile(seat.district_id)
    _check_claimant(ctx, app, seat)
    via, offers = await _claim_way(ctx, app, seat, profile)
    if not ctx.calendar.in_window(ctx.now, profile.window_open_minute, profile.window_close_minute):
        opens = ctx.calendar.next_window_open(ctx.now, profile.window_open_minute, profile.window_close_minute)
        raise OutsideClaimWindow(opens_at=opens.isoformat())
    docs_due = None
    if via == VIA_OFFER and app.privilege != Privilege.NONE and app.docs_state != DocsState.ACCEPTED:
        docs_due = docs_deadline(ctx, profile)
    return ClaimPlan(app, seat, kg, profile, via, offers, showup_deadline(ctx, profile), docs_due)


def _check_claimant(ctx: Ctx, app: Application, seat: Seat) -> None:
    """The application may claim a seat of this district now: it waits, and is not stop-listed."""
    if app.status != AppStatus.QUEUED:
        raise NotWaiting(status=app.status)
    if app.district_id != seat.district_id:
        raise NotEligibleForSeat()
    if app.stoplist_until is not None and app.stoplist_until > ctx.now:
        raise StopListed(until=app.stoplist_until.isoformat())


async def _claim_way(ctx: Ctx, app: Application, seat: Seat, profile: RuleProfile) -> tuple[str, list[Offer]]:
    """How the application may take this seat (``VIA_OFFER``, ``VIA_STATE_ORDER``, ``VIA_OPEN``) and
    the offers the claim closes; the rule's error when it may not."""
    if seat.status == SeatStatus.OFFERED:
        return VIA_OFFER, await _offers_claimed(ctx, app, seat)
    if seat.status == SeatStatus.OPEN and seat.private:
        if not old_enough_for_private(app.birth_date, ctx.calendar, ctx.now, profile.private_min_age_years):
            raise TooYoungForPrivate(min_age=profile.private_min_age_years)
        return VIA_STATE_ORDER, []
    if seat.status == SeatStatus.OPEN:
        if app.birth_year != seat.birth_year:
            raise NotEligibleForSeat()
        return VIA_OPEN, []
    raise SeatNotAvailable()


async def _offers_claimed(ctx: Ctx, app: Application, seat: Seat) -> list[Offer]:
    """The open offer of an offered seat, which must be this application's and not expired, and
    the rest of its batch (twins are claimed together)."""
    offer = (await ctx.session.execute(select(Offer).where(
        Offer.seat_id == seat.id, Offer.status == OfferStatus.OPEN))).scalar_one_or_none()
    if offer is None or offer.application_id != app.id:
        raise SeatNotAvailable()
    if offer.expires_at <= ctx.now:
        raise OfferExpired(expired_at=offer.expires_at.isoformat())
    if not offer.batch:
        return [offer]
    return list((await ctx.session.execute(select(Offer).where(
        Offer.batch == offer.batch, Offer.status == OfferStatus.OPEN,
        Offer.expires_at == offer.expires_at).order_by(Offer.id))).scalars())


async def claim(ctx: Ctx, app_number: str, seat_id: int, confirmed_by: str | None) -> list[Referral]:
    """Take the seat and issue the referral (twins of a batch: one referral each, together)."""
    if not confirmed_by:
        raise ConfirmationRequired()
    plan = await plan_claim(ctx, app_number, seat_id, lock=True)
    pairs: list[tuple[Application, Seat, Offer | None]] = []
    if plan.offers:
        for closed in plan.offers:
            app = plan.application if closed.application_id == plan.application.id else \
                await ctx.session.get(Application, closed.application_id)
            seat = plan.seat if closed.seat_id == plan.seat.id else await ctx.session.get(Seat, closed.seat_id)
            assert app is not None and seat is not None
            pairs.append((app, seat, closed))
    else:
        pairs.append((plan.application, plan.seat, None))
    referrals = []
    released: list[int] = []
    for app, seat, offer in pairs:
        expected = SeatStatus.OFFERED if offer is not None else SeatStatus.OPEN
        res = cast(CursorResult[Any], await ctx.session.execute(
            update(Seat).where(Seat.id == seat.id, Seat.status == expected)
            .values(status=SeatStatus.TAKEN).execution_options(synchronize_session=False)))
        if res.rowcount != 1:
            raise SeatNotAvailable()
        res = cast(CursorResult[Any], await ctx.session.execute(
            update(Application).where(Application.id == app.id, Application.status == AppStatus.QUEUED)
            .values(status=AppStatus.REFERRED, updated_at=ctx.now)
            .execution_options(synchronize_session=False)))
        if res.rowcount != 1:
            raise NotWaiting(status="changed")
        if offer is not None:
            res = cast(CursorResult[Any], await ctx.session.execute(
                update(Offer).where(Offer.id == offer.id, Offer.status == OfferStatus.OPEN)
                .values(status=OfferStatus.CLAIMED, closed_at=ctx.now)
                .execution_options(synchronize_session=False)))
            if res.rowcount != 1:
                raise SeatNotAvailable()
        # Claiming another seat closes this application's own open offer; that seat goes on.
        released += await release_offers(ctx, app.id)
        # Per child: a batch of twins may mix a privileged and a general application.
        docs_due = docs_deadline(ctx, plan.profile) if plan.via == VIA_OFFER \
            and app.privilege != Privilege.NONE and app.docs_state != DocsState.ACCEPTED else None
        referral = Referral(
            application_id=app.id, child_iin=app.child_iin, seat_id=seat.id,
            kindergarten_id=seat.kindergarten_id, group_id=seat.group_id, via=plan.via,
            privilege=app.privilege if plan.via == VIA_OFFER else Privilege.NONE, issued_at=ctx.now,
            confirmed_by=confirmed_by, showup_due_at=plan.showup_due_at,
            docs_state=DocsState.PENDING if docs_due else DocsState.NOT_REQUIRED, docs_due_at=docs_due,
            status="issued",
        )
        ctx.session.add(referral)
        try:
            await ctx.session.flush()
        except IntegrityError:
            # The database's last guard (a seat issued twice, a child with two referrals) held:
            # answer as a lost race; the unit of work rolls back whole.
            raise SeatNotAvailable() from None
        await ctx.session.refresh(app)
        if docs_due:
            app.docs_state = DocsState.PENDING
        queue_event(ctx, app, -1, REFERRAL)
        ctx.audit("referral.issue", "referral", referral.id, application_id=app.id, seat_id=seat.id,
                  via=plan.via, confirmed_by=confirmed_by)
        ctx.notify(NoticeKind.REFERRAL_ISSUED, app.id, f"referral:{referral.id}", ReferralIssued(
            referral_id=referral.id, kindergarten_id=seat.kindergarten_id, group_id=seat.group_id,
            showup_due_at=plan.showup_due_at, docs_due_at=docs_due))
        referrals.append(referral)
    if released:
        await fill_free_seats(ctx, released)
    return referrals


@dataclass
class AvailableSeat:
    seat: Seat
    kindergarten: Kindergarten
    via: str
    expires_at: dt.datetime | None


async def available_seats(ctx: Ctx, app_number: str, *, state_order_only: bool = False) -> list[AvailableSeat]:
    """Seats this application may claim now or in the next window (offered, open, state-order)."""
    return await seats_open_to(ctx, await get_application(ctx.session, app_number), state_order_only=state_order_only)


async def seats_open_to(ctx: Ctx, app: Application, *, state_order_only: bool = False) -> list[AvailableSeat]:
    """``available_seats`` of an application the caller has read already."""
    if app.status != AppStatus.QUEUED:
        return []
    out = await state_order_seats(ctx, app)
    if state_order_only:
        return out
    offered = (await ctx.session.execute(
        select(Seat, Kindergarten, Offer.expires_at).join(Offer, Offer.seat_id == Seat.id)
        .join(Kindergarten, Kindergarten.id == Seat.kindergarten_id)
        .where(Offer.application_id == app.id, Offer.status == OfferStatus.OPEN))).all()
    out += [AvailableSeat(s, k, VIA_OFFER, e) for s, k, e in offered]
    opened = (await ctx.session.execute(
        select(Seat, Kindergarten).join(Kindergarten, Kindergarten.id == Seat.kindergarten_id).where(
            Seat.district_id == app.district_id, Seat.birth_year == app.birth_year,
            Seat.status == SeatStatus.OPEN, Seat.private.is_(False)).order_by(Seat.id))).all()
    out += [AvailableSeat(s, k, VIA_OPEN, None) for s, k in opened]
    return out


async def state_order_seats(ctx: Ctx, app: Application) -> list[AvailableSeat]:
    """The /seats rule: the state-order seats open to ``app`` now, by kindergarten code and seat id.
    They are the open seats of its district's private kindergartens, for a waiting application
    whose child is old enough on the claim day (``old_enough_for_private``, its profile's age).
    This is the ORM reference of the hot read ``services.reads.seats``: the statement there writes
    the same rule in SQL, and tests/services/test_reads_equivalence.py holds the two to one answer."""
    if app.status != AppStatus.QUEUED:
        return []
    profile = await ctx.profile(app.district_id)
    if not old_enough_for_private(app.birth_date, ctx.calendar, ctx.now, profile.private_min_age_years):
        return []
    rows = (await ctx.session.execute(
        select(Seat, Kindergarten).join(Kindergarten, Kindergarten.id == Seat.kindergarten_id).where(
            Seat.district_id == app.district_id, Seat.status == SeatStatus.OPEN, Seat.private.is_(True),
        ).order_by(Kindergarten.code, Seat.id))).all()
    return [AvailableSeat(s, k, VIA_STATE_ORDER, None) for s, k in rows]


async def withdraw(ctx: Ctx, number: str) -> Application:
    """The registry withdraws a waiting application (the parent cancelled it): it leaves the
    queue, and a seat it was offered goes on to the next in line."""
    app = await get_application(ctx.session, number, for_update=True)
    if app.status != AppStatus.QUEUED:
        raise ApplicationClosed(field="number", status=app.status)
    app.status, app.updated_at = AppStatus.WITHDRAWN, ctx.now
    queue_event(ctx, app, -1, WITHDRAWN)
    released = await release_offers(ctx, app.id)
    ctx.audit("application.withdraw", "application", app.id)
    ctx.notify(NoticeKind.WITHDRAWN, app.id, f"withdrawn:{app.id}")
    if released:
        await fill_free_seats(ctx, released)
    return app
