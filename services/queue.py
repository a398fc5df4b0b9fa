"""The queue: applications, their order, queue numbers, and why a number moved.

Order within a queue (district, birth year): privilege rank (out-of-turn, first-priority,
general), then the submission moment, then the application number. The queue number is
1 + the count of *waiting* members (status ``queued``, stop-listed included) ahead.

Every change of a queue's waiting set is one ``QueueEvent`` (+1 joined, -1 left, with a cause),
so the move of any number since any moment, and its causes, are read back from the events
whose key is ahead of the application's.

Why one module of this size: the registry's load and the queue's order are one rule (who
stands where and why), written and read in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services import parsing as p
from services.context import Ctx
from services.deep_link import registration_key, token_expiry
from services.errors import (
    ApplicationClosed,
    ApplicationNotFound,
    ChildAlreadyQueued,
    DuplicateInBatch,
    InvalidField,
    KezekError,
    RowErrors,
    UnknownDistrict,
    UnknownKindergarten,
    ValidationError,
)
from services.notices import NoticeKind, Registration, outbox_row
from services.validation import normalise_email, normalise_phone, validate_iin
from storage.hot import AnySelect
from storage.models import (
    Application,
    ApplicationPreference,
    ChatLink,
    District,
    Kindergarten,
    Offer,
    OutboxMessage,
    QueueEvent,
    QueueLook,
    Referral,
    Seat,
    UTCDateTime,
)
from storage.vocab import AppStatus, DocsState, OfferStatus, Privilege, ReferralStatus, SeatStatus

A = Application
OPEN_STATUSES = (AppStatus.QUEUED, AppStatus.REFERRED)

# Causes of a queue move (QueueEvent.cause); the front ends localize them.
ARRIVAL = "arrival"  # a new application with a higher place arrived
REFERRAL = "referral"  # a referral was issued ahead
RETURNED = "returned"  # an annulled referral sent a child back to its old place
PRIVILEGE_DROPPED = "privilege_dropped"  # a child moved to the general queue
CHANGED = "changed"  # the registry changed an application's data
WITHDRAWN = "withdrawn"  # the registry withdrew an application


# The queue order: privilege rank, then submission time, then the application number.
QUEUE_KEY = (A.priv_rank, A.submitted_at, A.number)


def key_of(app: Application) -> tuple[int, dt.datetime, str]:
    return (app.priv_rank, app.submitted_at, app.number)


def key_before(rank: int, submitted_at: dt.datetime, number: str, cols: Any = None) -> Any:
    """SQL: the row's queue key is ahead of (rank, submitted_at, number)."""
    cols = cols or QUEUE_KEY
    return tuple_(*cols) < tuple_(literal(rank), literal(submitted_at, UTCDateTime()), literal(number))


def queue_event(ctx: Ctx, app: Application, delta: int, cause: str) -> None:
    ctx.session.add(QueueEvent(
        district_id=app.district_id, birth_year=app.birth_year, at=ctx.now,
        priv_rank=app.priv_rank, submitted_at=app.submitted_at, number=app.number,
        delta=delta, cause=cause, application_id=app.id,
    ))


# --- registry input ------------------------------------------------------------------------------

@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Seats whose offer the load cancelled (an application moved to another queue): the caller
    # offers them to the next in line in the same unit (services.offers.fill_free_seats).
    released_seats: list[int] = field(default_factory=list)


def _with_field(exc: KezekError, field_name: str) -> KezekError:
    exc.params.setdefault("field", field_name)
    return exc


def parse_application(row: p.Row, now: dt.datetime) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InvalidField(field="*", reason="object")
    birth_date = p.date(row, "birth_date")
    if birth_date > now.date() or birth_date.year < now.year - 8:
        raise InvalidField(field="birth_date", reason="range")
    try:
        iin = validate_iin(p.text(row, "child_iin", max_len=20), birth_date)
    except ValidationError as exc:
        raise _with_field(exc, "child_iin") from None
    submitted_at = p.moment(row, "submitted_at")
    if submitted_at > now + dt.timedelta(minutes=5):
        raise InvalidField(field="submitted_at", reason="future")
    try:
        phone = normalise_phone(p.text(row, "phone", max_len=30))
    except ValidationError as exc:
        raise _with_field(exc, "phone") from None
    try:
        email = normalise_email(p.text(row, "email", max_len=254))
    except ValidationError as exc:
        raise _with_field(exc, "email") from None
    privilege = p.choice(row, "privilege", Privilege.ALL, default=Privilege.NONE)
    return {
        "number": p.code(row, "number"),
        "child_iin": iin,
        "child_name": p.text(row, "child_name", max_len=200),
        "birth_date": birth_date,
        "birth_year": birth_date.year,
        "district": p.code(row, "district"),
        "language": p.choice(row, "language", ("ru", "kk"), default="ru"),
        "preferred": p.code_list(row, "preferred_kindergartens"),
        "privilege": privilege,
        "priv_rank": Privilege.RANK[privilege],
        "submitted_at": submitted_at,
        "phone": phone,
        "email": email,
        "twin_group": p.code(row, "twin_group", required=False) or None,
    }


_QUEUE_FIELDS = ("district_id", "birth_year", "priv_rank", "submitted_at", "number")
_DATA_FIELDS = ("child_iin", "child_name", "birth_date", "birth_year", "district_id", "language",
                "privilege", "priv_rank", "submitted_at", "phone", "email", "twin_group",
                "any_kindergarten")


async def import_applications(ctx: Ctx, rows: Sequence[p.Row],
                              progress: Callable[[int], None] | None = None) -> ImportReport:
    """Upsert applications by number, all or nothing: any bad row rejects the whole request."""
    errors = RowErrors()  # the first bad rows and a count (services.errors.MAX_REPORTED_ERRORS)
    items = await _parse_rows(rows, ctx.now, errors)
    _check_duplicates(items, errors)
    kgs = await _check_places(ctx.session, items, errors)
    good = [it for it in items if it]
    existing, other_open = await _holders(ctx.session, good)
    _check_holders(items, existing, other_open, errors)
    errors.raise_any()

    report = ImportReport()
    released: list[int] = []
    readdressed: dict[int, str] = {}  # waiting applications given another e-mail address: id -> address
    new_rows: list[dict[str, Any]] = []
    for item in good:
        app = existing.get(item["number"])
        if app is None:
            new_rows.append(item)
            continue
        if progress is not None:
            progress(1)
        moved = await _update_application(ctx, app, item, kgs, readdressed)
        if moved is None:
            report.unchanged += 1
            continue
        report.updated += 1
        released += moved
    if readdressed:
        await _registration_to_new_addresses(ctx, readdressed)
    if new_rows:
        await _insert_new(ctx, new_rows, kgs, progress)
        report.created = len(new_rows)
    report.released_seats = released
    return report


async def _parse_rows(rows: Sequence[p.Row], now: dt.datetime, errors: RowErrors) -> list[dict[str, Any]]:
    """The rows parsed (``parse_application``), in their order; a bad row is an empty item, its
    error noted."""
    items: list[dict[str, Any]] = []
    async for index, row in p.in_turns(rows):
        try:
            items.append(parse_application(row, now))
        except KezekError as exc:
            errors.add(index, exc)
            items.append({})
    return items


def _check_duplicates(items: list[dict[str, Any]], errors: RowErrors) -> None:
    """A number or a child twice in one request: the later row is wrong."""
    seen_numbers: dict[str, int] = {}
    seen_children: dict[str, int] = {}
    for index, item in enumerate(items):
        if not item:
            continue
        if item["number"] in seen_numbers:
            errors.add(index, DuplicateInBatch(field="number", value=item["number"]))
        elif item["child_iin"] in seen_children:
            errors.add(index, DuplicateInBatch(field="child_iin"))
        seen_numbers[item["number"]] = index
        seen_children[item["child_iin"]] = index


async def _check_places(session: AsyncSession, items: list[dict[str, Any]],
                        errors: RowErrors) -> dict[str, tuple[int, int]]:
    """Each item's district (its id set as ``district_id``) and preferred kindergartens (of that
    district) must exist; ``any_kindergarten`` set. Returns the kindergartens named: code -> (id,
    district id)."""
    districts = {d.code: d.id for d in (await session.execute(select(District))).scalars()}
    wanted_kgs = {c for it in items if it for c in it["preferred"]}
    kgs: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(sorted(wanted_kgs), 500):
        for kg in (await session.execute(select(Kindergarten).where(Kindergarten.code.in_(chunk)))).scalars():
            kgs[kg.code] = (kg.id, kg.district_id)
    for index, item in enumerate(items):
        if not item:
            continue
        district_id = districts.get(item["district"])
        if district_id is None:
            errors.add(index, UnknownDistrict(field="district", value=item["district"]))
            continue
        item["district_id"] = district_id
        for c in item["preferred"]:
            if c not in kgs or kgs[c][1] != district_id:
                errors.add(index, UnknownKindergarten(field="preferred_kindergartens", value=c))
                break
        item["any_kindergarten"] = not item["preferred"]
    return kgs


async def _holders(session: AsyncSession, good: list[dict[str, Any]]) -> tuple[dict[str, Application], dict[str, str]]:
    """The applications that exist already by number, and the numbers of the open applications
    of the items' children (IIN -> number)."""
    existing: dict[str, Application] = {}
    other_open: dict[str, str] = {}
    for chunk in _chunks([it["number"] for it in good], 500):
        for app in (await session.execute(select(A).where(A.number.in_(chunk)))).scalars():
            existing[app.number] = app
    for chunk in _chunks([it["child_iin"] for it in good], 500):
        q = select(A.child_iin, A.number).where(A.child_iin.in_(chunk), A.status.in_(OPEN_STATUSES))
        for iin, number in (await session.execute(q)).all():
            other_open[iin] = number
    return existing, other_open


def _check_holders(items: list[dict[str, Any]], existing: dict[str, Application], other_open: dict[str, str],
                   errors: RowErrors) -> None:
    """A child waits under one open application only, and a closed application keeps its place in
    the queue (its queue fields do not change)."""
    for index, item in enumerate(items):
        if not item:
            continue
        holder = other_open.get(item["child_iin"])
        if holder is not None and holder != item["number"]:
            errors.add(index, ChildAlreadyQueued(field="child_iin"))
        app = existing.get(item["number"])
        if app is not None and app.status != AppStatus.QUEUED and any(
            getattr(app, f) != item[f] for f in _QUEUE_FIELDS if f in item
        ):
            errors.add(index, ApplicationClosed(field="number", status=app.status))


async def _update_application(ctx: Ctx, app: Application, item: dict[str, Any], kgs: dict[str, tuple[int, int]],
                              readdressed: dict[int, str]) -> list[int] | None:
    """Apply an item to its existing application: its changed fields, a move in its queue (the
    seats its offers held are returned, to go on to the next in line), its preferences; a waiting
    application's new address is noted in ``readdressed``. None when nothing changed."""
    changed = {f: item[f] for f in _DATA_FIELDS if getattr(app, f) != item[f]}
    old_prefs = await preferred_codes(ctx.session, app.id)
    if not changed and old_prefs == item["preferred"]:
        return None
    released: list[int] = []
    queue_moves = any(f in changed for f in _QUEUE_FIELDS)
    if queue_moves and app.status == AppStatus.QUEUED:
        queue_event(ctx, app, -1, CHANGED)
    for f, v in changed.items():
        setattr(app, f, v)
    app.updated_at = ctx.now
    if queue_moves and app.status == AppStatus.QUEUED:
        queue_event(ctx, app, +1, CHANGED)
        # An offer was made for the old place in the old queue: it goes on to the next.
        released = await release_offers(ctx, app.id)
    if old_prefs != item["preferred"]:
        await _set_preferences(ctx, app.id, [kgs[c][0] for c in item["preferred"]], replace=True)
    if changed.get("email") and app.status == AppStatus.QUEUED:
        readdressed[app.id] = changed["email"]
    ctx.audit("application.update", "application", app.id, fields=sorted(changed))
    return released


async def _registration_to_new_addresses(ctx: Ctx, addresses: dict[int, str]) -> None:
    """The links mailed to an application's old address stop working (they are bound to it:
    services/deep_link.py); the new address gets a registration e-mail of its own, unless a chat
    has linked the application already (its link would be refused)."""
    linked: set[int] = set()
    for chunk in _chunks(sorted(addresses), 500):
        linked.update((await ctx.session.execute(
            select(ChatLink.application_id).where(ChatLink.application_id.in_(chunk)))).scalars())
    expires = token_expiry(ctx.now)
    notices = [_registration_notice(ctx, app_id, registration_key(app_id, email), expires)
               for app_id, email in addresses.items() if app_id not in linked]
    if notices:
        await ctx.insert_ignore(OutboxMessage, notices, "dedupe_key")


def _registration_notice(ctx: Ctx, app_id: int, dedupe_key: str, link_expires_at: dt.datetime) -> dict[str, Any]:
    return outbox_row(NoticeKind.REGISTRATION, app_id, dedupe_key, Registration(link_expires_at=link_expires_at),
                      ctx.now)


async def _insert_new(ctx: Ctx, items: list[dict[str, Any]], kgs: dict[str, tuple[int, int]],
                      progress: Callable[[int], None] | None = None) -> None:
    """Insert new applications in chunks: per chunk one INSERT of the applications, of their
    preferences, of their queue events and of their registration notices (e-mail only, with the
    one-tap deep link: services/deep_link.py), so a bulk load of 100,000 stays a few hundred
    statements and never holds more than a chunk of rows."""
    session = ctx.session
    link_expires_at = token_expiry(ctx.now)
    cols = ("number", "child_iin", "child_name", "birth_date", "birth_year", "district_id", "language",
            "privilege", "priv_rank", "submitted_at", "phone", "email", "twin_group", "any_kindergarten")
    for chunk in _chunks(items, 2000):
        values = [{c: it[c] for c in cols} | {
            "docs_state": DocsState.NOT_REQUIRED, "status": AppStatus.QUEUED, "missed_referrals": 0,
            "created_at": ctx.now, "updated_at": ctx.now,
        } for it in chunk]
        result = await session.execute(insert(A).returning(A.id, A.number), values)
        ids = {number: id_ for id_, number in result.all()}
        prefs: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        notices: list[dict[str, Any]] = []
        for it in chunk:
            app_id = ids[it["number"]]
            prefs.extend({"application_id": app_id, "kindergarten_id": kgs[c][0], "rank": r}
                         for r, c in enumerate(it["preferred"]))
            events.append({
                "district_id": it["district_id"], "birth_year": it["birth_year"], "at": ctx.now,
                "priv_rank": it["priv_rank"], "submitted_at": it["submitted_at"], "number": it["number"],
                "delta": 1, "cause": ARRIVAL, "application_id": app_id,
            })
            notices.append(_registration_notice(ctx, app_id, registration_key(app_id), link_expires_at))
            ctx.audit("application.create", "application", app_id)
        if prefs:
            await session.execute(insert(ApplicationPreference), prefs)
        await session.execute(insert(QueueEvent), events)
        await ctx.insert_ignore(OutboxMessage, notices, "dedupe_key")
        if progress is not None:
            progress(len(chunk))


async def _set_preferences(ctx: Ctx, app_id: int, kg_ids: list[int], replace: bool) -> None:
    if replace:
        await ctx.session.execute(delete(ApplicationPreference).where(
            ApplicationPreference.application_id == app_id))
    if kg_ids:
        await ctx.session.execute(insert(ApplicationPreference), [
            {"application_id": app_id, "kindergarten_id": k, "rank": r} for r, k in enumerate(kg_ids)])


_PREFERRED = (select(Kindergarten.code)
              .join(ApplicationPreference, ApplicationPreference.kindergarten_id == Kindergarten.id)
              .where(ApplicationPreference.application_id == bindparam("app_id"))
              .order_by(ApplicationPreference.rank))


async def preferred_codes(session: AsyncSession, app_id: int) -> list[str]:
    return list((await session.execute(_PREFERRED, {"app_id": app_id})).scalars())


def _chunks(seq: Sequence[Any] | Iterable[Any], size: int) -> Iterable[list[Any]]:
    seq = list(seq)
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# --- reading the queue ---------------------------------------------------------------------------

async def get_application(session: AsyncSession, number: str, *, for_update: bool = False) -> Application:
    q = select(A).where(A.number == str(number).strip())
    if for_update:
        q = q.with_for_update()
    app = (await session.execute(q)).scalar_one_or_none()
    if app is None:
        raise ApplicationNotFound()
    return app


async def queue_number(session: AsyncSession, app: Application) -> int | None:
    if app.status != AppStatus.QUEUED:
        return None
    q = select(func.count()).select_from(A).where(
        A.district_id == app.district_id, A.birth_year == app.birth_year,
        A.status == AppStatus.QUEUED, key_before(*key_of(app)),
    )
    return 1 + (await session.execute(q)).scalar_one()


def _ahead(app: Application, since: dt.datetime) -> tuple[Any, ...]:
    """SQL: the queue events ahead of ``app`` after ``since``: in its queue, not its own, with a
    queue key before its own."""
    E = QueueEvent
    return (E.district_id == app.district_id, E.birth_year == app.birth_year, E.at > since,
            E.application_id != app.id, key_before(*key_of(app), cols=(E.priv_rank, E.submitted_at, E.number)))


async def events_ahead(session: AsyncSession, app: Application,
                       since: dt.datetime) -> list[tuple[dt.datetime, int, str]]:
    """(moment, signed move, cause) of the queue events ahead of ``app`` after ``since``, oldest first."""
    E = QueueEvent
    q = select(E.at, E.delta, E.cause).where(*_ahead(app, since)).order_by(E.at, E.id)
    return [(at, delta, cause) for at, delta, cause in (await session.execute(q)).all()]


async def move_causes(session: AsyncSession, app: Application, since: dt.datetime) -> dict[str, int]:
    """The signed sum of moves per cause, from the events ahead of ``app`` after ``since`` (a
    /status card reads the same on the driver: ``services.reads.moves``)."""
    E = QueueEvent
    q = select(E.cause, func.sum(E.delta)).where(*_ahead(app, since)).group_by(E.cause)
    return {cause: int(total) for cause, total in (await session.execute(q)).all() if total}


def numbers_over_time(current: int, events: Sequence[tuple[dt.datetime, int, str]], since: dt.datetime,
                      now: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """(moment, number after it) from ``since`` to ``now``: the current number, walked back
    through the ``events_ahead`` since then."""
    points = [(now, current)]
    number = current
    for at, delta, _cause in reversed(events):
        points.append((at, number))
        number -= delta
    points.append((since, number))
    points.reverse()
    return points


async def number_history(session: AsyncSession, app: Application, since: dt.datetime,
                         now: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """(moment, number after it) from ``since`` to ``now``, rebuilt from the queue events."""
    current = await queue_number(session, app)
    if current is None:
        return []
    return numbers_over_time(current, await events_ahead(session, app, since), since, now)


@dataclass
class QueueView:
    application: Application
    district: District
    number: int | None
    previous: int | None
    previous_at: dt.datetime | None
    causes: dict[str, int]
    state: str
    preferred: list[str]
    open_offers: list[Offer] = field(default_factory=list)
    referral: Referral | None = None

    @property
    def delta(self) -> int | None:
        return number_move(self.number, self.previous)


def number_move(number: int | None, previous: int | None) -> int | None:
    """The signed move of a queue number since the one the viewer saw before (negative: it came
    closer); None when it is not waiting or the viewer never looked."""
    if number is None or previous is None:
        return None
    return number - previous


def state_of(status: str, stoplist_until: dt.datetime | None, offer_open: bool, now: dt.datetime) -> str:
    """What a parent is told the application's state is: a waiting application is stop-listed
    (until the stop-list ends), holds an open offer, or waits; any other keeps its status."""
    if status != AppStatus.QUEUED:
        return status
    if stoplist_until is not None and stoplist_until > now:
        return "stop_listed"
    return "offer_open" if offer_open else "waiting"


def count_ahead() -> Any:
    """SQL: how many waiting applications are ahead of the outer query's application in its
    queue; its number is one more. Three correlated counts, one per column of the queue key
    (a lower rank; the same rank, submitted earlier; the same moment, a lower number), each
    one range of ix_applications_queue with nothing left to test on its rows: SQLite matched
    the row value ``(rank, submitted_at, number) < (...)`` on two columns of the index and tested
    the whole row value on every row ahead, twice the time of the three ranges."""
    def ahead(key: Any) -> Any:
        other = aliased(Application)
        return select(func.count()).select_from(other).where(
            other.district_id == A.district_id, other.birth_year == A.birth_year,
            other.status == AppStatus.QUEUED, *key(other)).scalar_subquery()

    return (ahead(lambda o: (o.priv_rank < A.priv_rank,))
            + ahead(lambda o: (o.priv_rank == A.priv_rank, o.submitted_at < A.submitted_at))
            + ahead(lambda o: (o.priv_rank == A.priv_rank, o.submitted_at == A.submitted_at, o.number < A.number)))


def _view_statement(with_look: bool) -> AnySelect:
    """One round trip for the queue view: the application, its district, its queue number
    (a correlated count on ix_applications_queue), its open offer (at most one, by
    uq_offers_open_application) and, for a viewer, their last look. Built once: constructing a
    statement costs more Python than executing a cached one."""
    q = (select(A, District, count_ahead(), Offer)
         .join(District, District.id == A.district_id)
         .outerjoin(Offer, and_(Offer.application_id == A.id, Offer.status == OfferStatus.OPEN))
         .where(A.number == bindparam("number")))
    if with_look:
        q = q.add_columns(QueueLook).outerjoin(QueueLook, and_(
            QueueLook.application_id == A.id, QueueLook.viewer == bindparam("viewer")))
    return q


_VIEW = _view_statement(with_look=False)
_VIEW_AS_VIEWER = _view_statement(with_look=True)


async def view(ctx: Ctx, number: str, viewer: str | None = None, *, with_preferred: bool = True) -> QueueView:
    """The status of one application and, for a ``viewer``, its move since their last look
    (``with_preferred=False``: without the preferred kindergartens' codes, for a caller that reads
    them with their names itself).

    Read-only: the caller records the look (``record_look``) when the number differs from it."""
    session = ctx.session
    stmt = _VIEW_AS_VIEWER if viewer else _VIEW
    params = {"number": str(number).strip(), **({"viewer": viewer} if viewer else {})}
    row = (await session.execute(stmt, params)).one_or_none()
    if row is None:
        raise ApplicationNotFound()
    app, district = row[0], row[1]
    current = 1 + row[2] if app.status == AppStatus.QUEUED else None
    offers: list[Offer] = [row[3]] if row[3] is not None else []
    look: QueueLook | None = row[4] if viewer else None
    previous, previous_at = (look.number, look.at) if look is not None else (None, None)
    causes: dict[str, int] = {}
    if look is not None and current is not None and current != look.number:
        causes = await move_causes(session, app, look.at)
    # A waiting application holds no live referral.
    referral: Referral | None = None
    if app.status != AppStatus.QUEUED:
        referral = (await session.execute(select(Referral).where(
            Referral.application_id == app.id, Referral.status.in_(ReferralStatus.LIVE)))).scalar_one_or_none()
    state = state_of(app.status, app.stoplist_until, bool(offers), ctx.now)
    return QueueView(
        application=app, district=district, number=current, previous=previous,
        previous_at=previous_at, causes=causes, state=state,
        preferred=[] if app.any_kindergarten or not with_preferred else await preferred_codes(session, app.id),
        open_offers=offers, referral=referral,
    )


async def look(ctx: Ctx, number: str, viewer: str | None) -> QueueView:
    """``view`` for ``viewer``, remembering the number they saw when it is not the one they saw
    last (a write only then: most looks stay reads)."""
    seen = await view(ctx, number, viewer)
    if viewer is not None and seen.number is not None and seen.number != seen.previous:
        await record_look(ctx, seen.application.id, viewer, seen.number)
    return seen


async def record_look(ctx: Ctx, app_id: int, viewer: str, number: int, *, at: dt.datetime | None = None) -> None:
    """Remember the number a viewer saw (insert or update: two parallel looks are fine).

    A look is stored only when the number changed, so ``at`` (default: now) is the moment this
    number was first seen and the causes read since then add up to the next move."""
    await record_looks(ctx, [{"application_id": app_id, "viewer": viewer, "number": number, "at": at or ctx.now}])


async def record_looks(ctx: Ctx, looks: Sequence[dict[str, Any]]) -> None:
    """``record_look`` for many (``application_id``, ``viewer``, ``number``, ``at``) at once: one
    statement (SQLAlchemy sends the rows as multi-row VALUES), not one per look."""
    if not looks:
        return
    insert_ = pg_insert if ctx.is_postgres else sqlite_insert
    stmt = insert_(QueueLook)
    stmt = stmt.on_conflict_do_update(index_elements=["application_id", "viewer"],
                                      set_={"number": stmt.excluded.number, "at": stmt.excluded.at})
    await ctx.session.execute(stmt, list(looks))



async def release_offers(ctx: Ctx, app_id: int) -> list[int]:
    """Cancel an application's open offers; their seats are free for the next in line."""
    offers = (await ctx.session.execute(select(Offer).where(
        Offer.application_id == app_id, Offer.status == OfferStatus.OPEN))).scalars().all()
    for offer in offers:
        offer.status, offer.closed_at = OfferStatus.CANCELLED, ctx.now
        seat = await ctx.session.get(Seat, offer.seat_id)
        assert seat is not None
        seat.status = SeatStatus.FREE
        ctx.audit("offer.cancel", "offer", offer.id, application_id=app_id)
    await ctx.session.flush()
    return [o.seat_id for o in offers]
