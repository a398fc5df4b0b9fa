"""RULES.md as properties: a hypothesis state machine plays random sequences of
registry feeds, seat publications, claims, admissions, document decisions and clock moves (each
followed by the sweeps), and after every step checks the rules against the database itself.

Every action is also checked against a small model of the rules computed from the state just
before it: a claim succeeds exactly when the rules allow it, a publication offers its seats to
exactly the applications the rules name, and an action the rules forbid raises a KezekError and
changes nothing.

One event loop and one fresh SQLite database (a copy of the migrated template) per example.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from services.calendar import ALMATY, WorkingCalendar
from services.clock import FrozenClock
from services.errors import KezekError
from services.kezek import Kezek
from services.queue import queue_number
from services.validation import make_iin
from storage.db import Database
from storage.models import (
    Application,
    ApplicationPreference,
    AuditEntry,
    CalendarDay,
    Kindergarten,
    Offer,
    OutboxMessage,
    QueueEvent,
    Referral,
    RuleProfile,
    Seat,
)
from tests.support.world import World, almaty

OPEN_MIN, CLOSE_MIN = 9 * 60, 20 * 60
SHOWUP_WD, STOPLIST_WD, REMOVAL_AT = 5, 10, 2
DOCS_WD, DOCS_CAL, PRIVATE_AGE = 5, 10, 3

LIVE = ("issued", "admitted")


# Starting moments: an ordinary working morning, a Saturday, and days just before public holidays
# (Nauryz, 7/9 May, Republic Day, Independence Day) so clock moves and deadlines cross them.
STARTS = [
    almaty(2026, 9, 7, 10, 0),  # Monday
    almaty(2026, 9, 12, 11, 0),  # Saturday
    almaty(2026, 3, 18, 10, 0),  # Wednesday before Nauryz (21-25 March off)
    almaty(2026, 3, 20, 15, 0),  # Friday before Nauryz: 5 working days outlast 10 calendar days
    almaty(2026, 5, 6, 19, 30),  # Wednesday before 7 May
    almaty(2026, 10, 23, 19, 45),  # Friday before Republic Day (26 October off)
    almaty(2026, 12, 15, 18, 0),  # Tuesday before Independence Day
]
BIRTH_DATES = [dt.date(2022, 5, 10), dt.date(2023, 3, 15), dt.date(2023, 11, 20)]
SUBMITTED_BASE = almaty(2024, 1, 1, 9, 0)
MAX_APPS = 24


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def qkey(app: Application) -> tuple[int, dt.datetime, str]:
    return (app.priv_rank, app.submitted_at, app.number)


def rows_of(objs: Any, model: type) -> tuple[tuple[Any, ...], ...]:
    cols = [c.key for c in model.__mapper__.column_attrs]  # type: ignore[attr-defined]
    return tuple(tuple(getattr(o, c) for c in cols) for o in objs)


# --- a snapshot of the whole database ---------------------------------------------------------------

@dataclass
class Snap:
    now: dt.datetime
    cal: WorkingCalendar
    apps: dict[int, Application]
    prefs: dict[int, set[int]]
    kgs: dict[int, Kindergarten]
    seats: dict[int, Seat]
    offers: dict[int, Offer]
    refs: dict[int, Referral]
    event_sum: dict[int, int]
    event_count: int
    outbox_count: int
    audit_count: int
    numbers: dict[int, int | None] = field(default_factory=dict)

    # derived views
    def kg_code(self, code: str) -> Kindergarten:
        return next(k for k in self.kgs.values() if k.code == code)

    def open_offers(self) -> list[Offer]:
        return sorted((o for o in self.offers.values() if o.status == "open"), key=lambda o: o.id)

    def open_offer_apps(self) -> set[int]:
        return {o.application_id for o in self.open_offers()}

    def live_refs(self) -> list[Referral]:
        return [r for r in self.refs.values() if r.status in LIVE]

    def stoplisted(self, app: Application) -> bool:
        return app.stoplist_until is not None and app.stoplist_until > self.now

    def in_window(self, moment: dt.datetime | None = None) -> bool:
        """09:00 <= local time < 20:00 on a working day (spelled out, not the service's own helper)."""
        local = (moment or self.now).astimezone(ALMATY)
        return self.cal.is_working_day(local.date()) and \
            dt.time(OPEN_MIN // 60) <= local.time() < dt.time(CLOSE_MIN // 60)

    def fingerprint(self) -> tuple[Any, ...]:
        return (
            rows_of(sorted(self.apps.values(), key=lambda a: a.id), Application),
            tuple(sorted((a, k) for a, ks in self.prefs.items() for k in ks)),
            rows_of(sorted(self.seats.values(), key=lambda s: s.id), Seat),
            rows_of(sorted(self.offers.values(), key=lambda o: o.id), Offer),
            rows_of(sorted(self.refs.values(), key=lambda r: r.id), Referral),
            self.event_count, self.outbox_count, self.audit_count,
        )


def load(session: Session, now: dt.datetime) -> Snap:
    """Every row that matters (queue numbers: KezekMachine.load)."""
    def all_of(model: type) -> list[Any]:
        return list(session.execute(select(model)).scalars().all())

    overrides = {d.day: (d.working, d.name) for d in all_of(CalendarDay)}
    prefs: dict[int, set[int]] = {}
    for p in all_of(ApplicationPreference):
        prefs.setdefault(p.application_id, set()).add(p.kindergarten_id)
    event_sum = {int(a): int(s) for a, s in session.execute(
        select(QueueEvent.application_id, func.sum(QueueEvent.delta))
        .group_by(QueueEvent.application_id)).all()}
    counts = session.execute(select(*(
        select(func.count()).select_from(m).scalar_subquery()
        for m in (QueueEvent, OutboxMessage, AuditEntry)))).one()
    return Snap(
        now=now, cal=WorkingCalendar(overrides),
        apps={a.id: a for a in all_of(Application)}, prefs=prefs,
        kgs={k.id: k for k in all_of(Kindergarten)},
        seats={s.id: s for s in all_of(Seat)},
        offers={o.id: o for o in all_of(Offer)},
        refs={r.id: r for r in all_of(Referral)},
        event_sum=event_sum, event_count=counts[0], outbox_count=counts[1], audit_count=counts[2],
    )


class AwaitableSession:
    """services.queue.queue_number awaits ``session.execute``: let it run on the checker's
    synchronous session (same SQLite dialect, same SQL; no thread hop per query)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def execute(self, *args: Any, **kw: Any) -> Any:
        return self.session.execute(*args, **kw)


# --- the model of the rules ------------------------------------------------------------------------

def eligible_for_offer(s: Snap, app: Application, kg: Kindergarten, year: int) -> bool:
    """RULES.md: first waiting application of that birth year in that district that is not
    stop-listed, has no open offer or referral, and wants that kindergarten or accepts any."""
    return (app.district_id == kg.district_id and app.birth_year == year and app.status == "queued"
            and not s.stoplisted(app) and app.id not in s.open_offer_apps()
            and (app.any_kindergarten or kg.id in s.prefs.get(app.id, set())))


def expected_offer_order(s: Snap, kg: Kindergarten, year: int, count: int) -> list[str]:
    """Who the rules say gets ``count`` new seats, in seat order (twins only together)."""
    waiting = sorted((a for a in s.apps.values() if a.status == "queued"
                      and a.district_id == kg.district_id and a.birth_year == year), key=qkey)
    out: list[str] = []
    seen: set[int] = set()
    for app in waiting:
        if len(out) >= count:
            break
        if app.id in seen or not eligible_for_offer(s, app, kg, year):
            continue
        members = [app]
        if app.twin_group:
            members = [b for b in waiting if b.twin_group == app.twin_group]
            seen.update(b.id for b in members)
            if not all(eligible_for_offer(s, b, kg, year) for b in members) \
                    or len(members) > count - len(out):
                continue
        out += [m.number for m in members]
    return out


def claim_allowed(s: Snap, app: Application, seat: Seat, confirmed: bool) -> tuple[bool, str]:
    """Whether the rules let ``app`` claim ``seat`` now, and why not."""
    if not confirmed:
        return False, "no confirmation"
    if app.status != "queued":
        return False, f"application {app.status}"
    if app.district_id != seat.district_id:
        return False, "other district"
    if s.stoplisted(app):
        return False, "stop-listed"
    if seat.status == "offered":
        offer = next((o for o in s.open_offers() if o.seat_id == seat.id), None)
        if offer is None or offer.application_id != app.id:
            return False, "offered to another"
        if offer.expires_at <= s.now:
            return False, "offer expired"
    elif seat.status == "open" and seat.private:
        if age_on(app.birth_date, s.cal.local_date(s.now)) < PRIVATE_AGE:
            return False, "too young for a private seat"
    elif seat.status == "open":
        if app.birth_year != seat.birth_year:
            return False, "other birth year"
    else:
        return False, f"seat {seat.status}"
    if not s.in_window():
        return False, "outside the claim window"
    return True, "allowed"


def showup_due(s: Snap) -> dt.datetime:
    return s.cal.deadline_after(s.cal.local_date(s.now), SHOWUP_WD)


def docs_due(s: Snap) -> dt.datetime:
    day = s.cal.local_date(s.now)
    return min(s.cal.deadline_after(day, DOCS_WD), s.cal.end_of_day(day + dt.timedelta(days=DOCS_CAL)))


APP_SPEC = st.fixed_dictionaries({
    "privilege": st.sampled_from(["none", "none", "none", "first", "out_of_turn"]),
    "birth": st.sampled_from(BIRTH_DATES),
    "submitted": st.one_of(st.integers(0, 30), st.just(-1)),
    "preferred": st.sampled_from([[], [], [], ["KG1"], ["KG2"], ["KG1", "KG2"], ["KG2", "PRIV"]]),
    "twins": st.sampled_from([False, False, False, False, True]),
    "twin_preferred": st.sampled_from([None, None, None, ["KG2"]]),
    "twin_privilege": st.sampled_from([None, None, "none", "first"]),
    "district": st.sampled_from(["ALM-BOS"] * 6 + ["ALM-MED"]),
    "prefix": st.sampled_from(["A", "B", "C"]),
})


# --- the state machine --------------------------------------------------------------------------------

class KezekMachine(RuleBasedStateMachine):
    template: Path | None = None  # set by the test below

    def __init__(self) -> None:
        super().__init__()
        assert self.template is not None
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="kezek-prop-"))
        path = self.dir / "kezek.sqlite3"
        shutil.copy(self.template, path)
        self.db = Database(f"sqlite:///{path}")
        # The checker reads the same file through a plain synchronous engine (WAL: it sees
        # every committed unit of work).
        self.reader = create_engine(f"sqlite:///{path}")
        self.clock = FrozenClock(STARTS[0])
        self.kz = Kezek(self.db, self.clock)
        self.world = World(self.kz, self.clock)
        self.serial = 0
        self.iins: set[str] = set()
        self.snap: Snap | None = None
        self.fresh: Snap | None = None
        self.decrees = 0
        # app id -> stop-list periods [start, until) seen so far
        self.stop_periods: dict[int, set[tuple[dt.datetime, dt.datetime]]] = {}

    def teardown(self) -> None:
        try:
            self.reader.dispose()
            self.loop.run_until_complete(self.db.dispose())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- plumbing ------------------------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        """Run a service call (anything may change: the cached snapshot is dropped)."""
        self.fresh = None
        return self.loop.run_until_complete(coro)

    def load(self, with_numbers: bool = True) -> Snap:
        """The database now (cached until the next service call or clock move)."""
        now = self.clock.now()
        if self.fresh is None or self.fresh.now != now:
            with Session(self.reader) as session:
                self.fresh = load(session, now)
        snap = self.fresh
        if with_numbers and not snap.numbers:
            with Session(self.reader) as session:
                async def numbers() -> None:
                    for app in snap.apps.values():
                        snap.numbers[app.id] = await queue_number(AwaitableSession(session), app)  # type: ignore[arg-type]
                self.loop.run_until_complete(numbers())
        return snap

    @property
    def pre(self) -> Snap:
        assert self.snap is not None
        return self.snap

    def attempt(self, coro: Any) -> tuple[Any, KezekError | None]:
        """Run a service call; a KezekError must leave the database exactly as it was."""
        before = self.load(with_numbers=False).fingerprint()
        try:
            return self.run(coro), None
        except KezekError as exc:
            after = self.load(with_numbers=False).fingerprint()
            assert after == before, f"{exc!r} was raised but the database changed"
            return None, exc

    def sweep(self) -> None:
        self.run(self.kz.run_sweeps())

    # --- setup -----------------------------------------------------------------------------------
    @initialize(start=st.sampled_from(STARTS), specs=st.lists(APP_SPEC, min_size=2, max_size=8))
    def setup(self, start: dt.datetime, specs: list[dict[str, Any]]) -> None:
        self.clock.set(start)
        self.run(self.world.setup())

        with Session(self.reader) as session:
            p = session.execute(select(RuleProfile).where(RuleProfile.code == "default")).scalar_one()
        assert (p.window_open_minute, p.window_close_minute, p.offer_windows, p.showup_working_days,
                p.stoplist_working_days, p.removal_on_annulment, p.docs_working_days,
                p.docs_calendar_days, p.private_min_age_years, p.interleave_general_per_first,
                p.twins_together) == (OPEN_MIN, CLOSE_MIN, 1, SHOWUP_WD, STOPLIST_WD, REMOVAL_AT,
                                      DOCS_WD, DOCS_CAL, PRIVATE_AGE, 0, True)
        self._import(specs)
        self.snap = self.load()

    # --- registry: new applications ----------------------------------------------------------------
    def _row(self, spec: dict[str, Any], birth: dt.date, submitted: dt.datetime,
             twin_group: str | None, preferred: list[str], privilege: str | None = None) -> dict[str, Any]:
        self.serial += 1
        row = self.world.row(f"{spec['prefix']}{self.serial:04d}", birth_date=birth, submitted=submitted,
                             privilege=privilege or spec["privilege"], district=spec["district"],
                             preferred=[p for p in preferred if spec["district"] == "ALM-BOS"],
                             twin_group=twin_group)
        serial = self.serial
        while row["child_iin"] in self.iins:  # make_iin may skip to the next serial
            serial += 1000
            row["child_iin"] = make_iin(birth, serial)
        self.iins.add(row["child_iin"])
        return row

    def _import(self, specs: list[dict[str, Any]]) -> None:
        rows = []
        for spec in specs:
            # Submission moments on a coarse grid (ties happen: the number decides), or just now.
            submitted = (self.clock.now() - dt.timedelta(minutes=1) if spec["submitted"] < 0
                         else SUBMITTED_BASE + dt.timedelta(days=7 * spec["submitted"]))
            group = f"T{self.serial + 1:04d}" if spec["twins"] else None
            rows.append(self._row(spec, spec["birth"], submitted, group, spec["preferred"]))
            if spec["twins"]:
                # twins: one batch, though each child may have its own privilege and wishes
                rows.append(self._row(spec, spec["birth"], submitted, group,
                                      spec["twin_preferred"] or spec["preferred"], spec["twin_privilege"]))
        report = self.run(self.kz.import_applications(rows))
        assert report.created == len(rows)

    @precondition(lambda self: self.snap is not None and len(self.snap.apps) < MAX_APPS)
    @rule(specs=st.lists(APP_SPEC, min_size=1, max_size=3))
    def new_applications(self, specs: list[dict[str, Any]]) -> None:
        self._import(specs)

    @precondition(lambda self: self.snap is not None and len(self.snap.apps) < MAX_APPS
                  and any(a.status == "admitted" for a in self.snap.apps.values()))
    @rule(i=st.integers(0, 50), privilege=st.sampled_from(["none", "first"]))
    def new_application_after_admission(self, i: int, privilege: str) -> None:
        """RULES.md: after admission a parent may file a new application (to move elsewhere)."""
        admitted = [a for a in self._apps() if a.status == "admitted"]
        old = admitted[i % len(admitted)]
        if any(a.child_iin == old.child_iin and a.status in ("queued", "referred")
               for a in self.pre.apps.values()):
            return
        self.serial += 1
        row = self.world.row(f"R{self.serial:04d}", birth_date=old.birth_date, privilege=privilege,
                             submitted=self.clock.now() - dt.timedelta(minutes=1))
        row["child_iin"] = old.child_iin
        report = self.run(self.kz.import_applications([row]))
        assert report.created == 1

    # --- registry: seats ---------------------------------------------------------------------------
    @rule(kg=st.sampled_from(["KG1", "KG1", "KG2", "PRIV"]), year=st.sampled_from([2022, 2023, 2023]),
          count=st.integers(1, 3))
    def publish(self, kg: str, year: int, count: int) -> None:
        pre = self.pre
        kindergarten = pre.kg_code(kg)
        expected = [] if kindergarten.kind == "private_state_order" else \
            expected_offer_order(pre, kindergarten, year, count)
        result = self.run(self.kz.publish_seats(
            {"kindergarten": kg, "birth_year": year, "language": "ru", "count": count}))
        assert len(result.seat_ids) == count
        assert result.private == (kindergarten.kind == "private_state_order")
        got = [number for _, _, number in sorted(result.offers, key=lambda o: o[1])]
        assert got == expected, f"publishing {count} {kg}/{year} seats offered them to {got}, " \
                                f"the rules say {expected}"
        assert [sid for _, sid, _ in sorted(result.offers, key=lambda o: o[1])] == \
            sorted(result.seat_ids)[:len(expected)]

    # --- parents: claims ---------------------------------------------------------------------------
    def _wait_for_window(self, wait: bool) -> None:
        """The parent waits for the claim window to open (the sweeps run when the clock moves)."""
        if not wait or self.pre.in_window():
            return
        opens = self.pre.cal.next_window_open(self.pre.now, OPEN_MIN, CLOSE_MIN)
        self.clock.set(max(opens, self.pre.now) + dt.timedelta(minutes=7))
        self.sweep()
        self._after_sweep()
        self.snap = self.load()

    def _claim(self, app: Application, seat: Seat, confirmed: bool) -> None:
        pre = self.pre
        allowed, why = claim_allowed(pre, app, seat, confirmed)
        batch: list[Offer] = []
        if allowed and seat.status == "offered":
            offer = next(o for o in pre.open_offers() if o.seat_id == seat.id)
            batch = [o for o in pre.open_offers() if o.batch and o.batch == offer.batch
                     and o.expires_at == offer.expires_at] if offer.batch else [offer]
        refs, err = self.attempt(self.kz.claim(app.number, seat.id, "tg:1" if confirmed else None))
        event(f"claim {seat.status}{' private' if seat.private else ''}: {why}"
              f"{' (twins)' if len(batch) > 1 else ''}")
        assert (err is None) == allowed, \
            f"claim of seat {seat.id} ({seat.status}) by {app.number}: rules say " \
            f"{'allowed' if allowed else 'refused (' + why + ')'}, service said {err!r}"
        if err is not None:
            return
        post = self.load(with_numbers=False)
        new = [r for r in post.refs.values() if r.id not in pre.refs]
        assert sorted(r.id for r in refs) == sorted(r.id for r in new)
        if batch:
            assert sorted((r.application_id, r.seat_id) for r in new) == \
                sorted((o.application_id, o.seat_id) for o in batch), "twins are claimed together"
            for o in batch:
                assert post.offers[o.id].status == "claimed"
        else:
            assert [(r.application_id, r.seat_id) for r in new] == [(app.id, seat.id)]
        for r in new:
            before = pre.apps[r.application_id]
            assert not pre.stoplisted(before), f"{before.number} got a referral while stop-listed"
            assert before.status == "queued"
            assert post.apps[r.application_id].status == "referred"
            assert post.seats[r.seat_id].status == "taken"
            assert r.issued_at == pre.now and r.confirmed_by == "tg:1"
            assert r.showup_due_at == showup_due(pre)
            via = "offer" if seat.status == "offered" else ("state_order" if seat.private else "open")
            assert r.via == via
            needs_docs = via == "offer" and before.privilege != "none" and before.docs_state != "accepted"
            assert (r.privilege, r.docs_state, r.docs_due_at) == (
                before.privilege if via == "offer" else "none",
                "pending" if needs_docs else "not_required",
                docs_due(pre) if needs_docs else None,
            ), f"referral {r.id} of {before.number} (privilege {before.privilege}, documents " \
               f"{before.docs_state}) claimed by {app.number} via {via}: privilege documents " \
               f"{r.docs_state}, due {r.docs_due_at}"
            # the child's other open offers are closed, and their seats go on to the queue
            for o in pre.open_offers():
                if o.application_id == r.application_id and o.seat_id != r.seat_id:
                    assert post.offers[o.id].status == "cancelled"

    def _apps(self) -> list[Application]:
        return sorted(self.pre.apps.values(), key=lambda a: a.id)

    def _seats(self, statuses: tuple[str, ...] = ()) -> list[Seat]:
        return [s for s in sorted(self.pre.seats.values(), key=lambda s: s.id)
                if not statuses or s.status in statuses]

    @precondition(lambda self: self.snap is not None and bool(self.snap.open_offers()))
    @rule(i=st.integers(0, 50), confirm=st.integers(0, 9), wait=st.integers(0, 3))
    def claim_offered_seat(self, i: int, confirm: int, wait: int) -> None:
        self._wait_for_window(wait > 0)
        offers = self.pre.open_offers()
        if not offers:  # they ran out while waiting
            return
        offer = offers[i % len(offers)]
        self._claim(self.pre.apps[offer.application_id], self.pre.seats[offer.seat_id], confirm > 0)

    @precondition(lambda self: self.snap is not None
                  and any(s.status == "open" for s in self.snap.seats.values()))
    @rule(i=st.integers(0, 50), j=st.integers(0, 50), confirm=st.integers(0, 9), wait=st.integers(0, 3),
          anyone=st.integers(0, 3))
    def claim_open_seat(self, i: int, j: int, confirm: int, wait: int, anyone: int) -> None:
        """A passed state seat, or a private state-order seat: first confirmed claim wins."""
        self._wait_for_window(wait > 0)
        seats = self._seats(("open",))
        if not seats:
            return
        seat = seats[j % len(seats)]
        apps = self._apps()
        if anyone == 0:
            apps = [a for a in apps if a.status == "queued" and a.district_id == seat.district_id] or apps
        elif anyone == 1:  # someone who already missed a referral (stop-listed, or back after it)
            apps = [a for a in apps if a.status == "queued" and a.missed_referrals] or apps
        self._claim(apps[i % len(apps)], seat, confirm > 0)

    @precondition(lambda self: self.snap is not None and bool(self.snap.seats))
    @rule(i=st.integers(0, 50), j=st.integers(0, 50), confirm=st.integers(0, 9))
    def claim_any_seat(self, i: int, j: int, confirm: int) -> None:
        apps, seats = self._apps(), self._seats()
        self._claim(apps[i % len(apps)], seats[j % len(seats)], confirm > 0)

    # --- kindergartens and operators -------------------------------------------------------------
    def _ref(self, i: int, good: Any, prefer_good: bool) -> Referral:
        refs = sorted(self.pre.refs.values(), key=lambda r: r.id)
        pool = [r for r in refs if good(r)] if prefer_good else []
        pool = pool or refs
        return pool[i % len(pool)]

    @precondition(lambda self: self.snap is not None and bool(self.snap.refs))
    @rule(i=st.integers(0, 50), prefer_live=st.integers(0, 3))
    def admit(self, i: int, prefer_live: int) -> None:
        pre = self.pre
        ref = self._ref(i, lambda r: r.status == "issued", prefer_live > 0)
        # admission waits for pending privilege documents (they are due no later than the show-up)
        allowed = ref.status == "issued" and pre.now < ref.showup_due_at and ref.docs_state != "pending"
        _, err = self.attempt(self.kz.admit(ref.id))
        event(f"admit: {'done' if allowed else 'refused'}")
        assert (err is None) == allowed, f"admit of referral {ref.id} ({ref.status}, due " \
                                         f"{ref.showup_due_at}): rules say {allowed}, service {err!r}"
        if err is None:
            post = self.load(with_numbers=False)
            assert post.refs[ref.id].status == "admitted"
            assert post.refs[ref.id].closed_at == pre.now
            assert post.apps[ref.application_id].status == "admitted"

    @precondition(lambda self: self.snap is not None and bool(self.snap.refs))
    @rule(i=st.integers(0, 50), accepted=st.booleans(), prefer_pending=st.integers(0, 3))
    def decide_documents(self, i: int, accepted: bool, prefer_pending: int) -> None:
        pre = self.pre
        ref = self._ref(i, lambda r: r.status in LIVE and r.docs_state == "pending", prefer_pending > 0)
        allowed = ref.status == "issued" and ref.docs_state == "pending" and ref.docs_due_at is not None \
            and pre.now < ref.docs_due_at
        _, err = self.attempt(self.kz.decide_documents(ref.id, accepted))
        event(f"documents {'accepted' if accepted else 'rejected'}: {'done' if allowed else 'refused'}")
        assert (err is None) == allowed, f"documents of referral {ref.id} ({ref.status}, " \
                                         f"{ref.docs_state}): rules say {allowed}, service {err!r}"
        if err is not None:
            return
        post = self.load(with_numbers=False)
        app = post.apps[ref.application_id]
        if accepted:
            assert post.refs[ref.id].docs_state == "accepted" and post.refs[ref.id].status == ref.status
        else:
            r = post.refs[ref.id]
            assert (r.status, r.annul_reason, r.closed_at) == ("annulled", "docs_rejected", pre.now)
            # privilege dropped, submission moment kept, no stop-list
            assert (app.status, app.privilege, app.priv_rank) == ("queued", "none", 2)
            assert app.submitted_at == pre.apps[app.id].submitted_at
            assert app.stoplist_until is None

    @precondition(lambda self: self.decrees < 2)
    @rule(days_ahead=st.integers(1, 10), working=st.booleans())
    def operator_calendar_day(self, days_ahead: int, working: bool) -> None:
        """A later decree: a day off or a working weekend day, always in the future."""
        day = self.pre.cal.local_date(self.pre.now) + dt.timedelta(days=days_ahead)
        self.run(self.kz.set_calendar_day(day, working, "" if working else "Decree"))
        self.decrees += 1

    # --- time ----------------------------------------------------------------------------------------
    def _deadlines(self) -> list[dt.datetime]:
        s = self.pre
        out = {o.expires_at for o in s.open_offers()}
        out |= {r.showup_due_at for r in s.refs.values() if r.status == "issued"}
        out |= {r.docs_due_at for r in s.live_refs() if r.docs_state == "pending" and r.docs_due_at}
        out |= {a.stoplist_until for a in s.apps.values() if a.stoplist_until}
        return sorted(out)

    @rule(move=st.one_of(
        # a plain step: minutes, hours, days (or none: the scheduler runs with the clock standing still)
        st.tuples(st.just("by"), st.one_of(
            st.just(dt.timedelta(0)),
            st.integers(1, 90).map(lambda m: dt.timedelta(minutes=m)),
            st.integers(1, 16).map(lambda h: dt.timedelta(hours=h)),
            st.integers(1, 6).map(lambda d: dt.timedelta(days=d)),
            st.tuples(st.integers(1, 3), st.integers(0, 23)).map(
                lambda t: dt.timedelta(days=t[0], hours=t[1])))),
        # to the next given local time of day: the edges of the claim window, midnight
        st.tuples(st.just("to"), st.tuples(
            st.sampled_from([OPEN_MIN - 1, OPEN_MIN, CLOSE_MIN - 1, CLOSE_MIN, CLOSE_MIN + 1, 0, 1439]),
            st.integers(0, 2))),
        # to just before, at, or just after a pending deadline (offer, show-up, documents, stop-list)
        st.tuples(st.just("deadline"), st.tuples(
            st.integers(0, 20), st.sampled_from([-60, -1, 0, 0, 1, 3600])))),
        second_sweep=st.integers(0, 4))
    def move_clock(self, move: tuple[str, Any], second_sweep: int) -> None:
        kind, arg = move
        now = self.clock.now()
        if kind == "by":
            target = now + arg
        elif kind == "to":
            minute, skip = arg
            day = now.astimezone(ALMATY).date() + dt.timedelta(days=skip)
            target = WorkingCalendar.at_local(day, minute)
            while target <= now:
                day += dt.timedelta(days=1)
                target = WorkingCalendar.at_local(day, minute)
        else:
            index, offset = arg
            later = [d for d in self._deadlines() if d + dt.timedelta(seconds=offset) > now]
            target = later[index % len(later)] + dt.timedelta(seconds=offset) if later \
                else now + dt.timedelta(days=1)
        self.clock.set(target)
        self.sweep()
        self._after_sweep()
        if second_sweep == 0:
            # Sweeps are idempotent: a second run at the same instant (a second instance) changes nothing.
            before = self.load(with_numbers=False).fingerprint()
            done = self.run(self.kz.run_sweeps())
            assert self.load(with_numbers=False).fingerprint() == before, \
                f"a second sweep changed things: {done}"

    def _after_sweep(self) -> None:
        """What a sweep did to the referrals, against the deadlines they carried."""
        pre, post = self.pre, self.load(with_numbers=False)
        # A free (state) seat left over after a sweep has no one to go to.
        for seat in post.seats.values():
            if seat.status != "free" or seat.private:  # private seats: _check_private_seats
                continue
            kg = post.kgs[seat.kindergarten_id]
            takers = [a.number for a in post.apps.values() if not a.twin_group
                      and eligible_for_offer(post, a, kg, seat.birth_year)]
            assert not takers, f"free seat {seat.id} ({kg.code}/{seat.birth_year}) not offered to {takers}"
        for r in pre.live_refs():
            after = post.refs[r.id]
            # RULES.md "Privilege documents": documents due and not accepted with a deadline on or
            # before the show-up deadline decide (never both penalties); else the show-up does.
            if r.docs_state == "pending" and r.docs_due_at is not None and r.docs_due_at <= r.showup_due_at:
                first, reason = r.docs_due_at, "docs_missed"
            else:
                first, reason = r.showup_due_at, "no_show"
            if r.status != "issued" or first > post.now:
                assert after.status == r.status, f"referral {r.id} {after.status} before its deadlines"
                continue
            assert (after.status, after.annul_reason) == ("annulled", reason), \
                f"referral {r.id}: deadline {first} passed, expected {reason}, got " \
                f"{after.status}/{after.annul_reason}"
            assert after.closed_at == first, f"referral {r.id} due {first} annulled as of {after.closed_at}"
            event(f"sweep annulled: {after.annul_reason}{' (private seat)' if pre.seats[r.seat_id].private else ''}")
            app = post.apps[r.application_id]
            if after.annul_reason == "docs_missed":
                assert (app.status, app.privilege, app.priv_rank, app.stoplist_until) == \
                    ("queued", "none", 2, None)
                assert app.submitted_at == pre.apps[app.id].submitted_at
            else:
                no_shows = sum(1 for x in post.refs.values() if x.application_id == app.id
                               and x.annul_reason == "no_show")
                if no_shows >= REMOVAL_AT:
                    assert app.status == "removed"
                    event("application removed")
                else:
                    assert app.status == "queued"
                    # the stop-list is counted from the date the annulment takes effect
                    until = pre.cal.deadline_after(pre.cal.effective_date(first), STOPLIST_WD)
                    assert app.stoplist_until == (until if until > post.now else None), \
                        f"{app.number}: stop-list until {app.stoplist_until}, rules say {until}"
                    self.stop_periods.setdefault(app.id, set()).add((first, until))

    # --- invariants ----------------------------------------------------------------------------------
    @invariant()
    def rules_hold(self) -> None:
        if self.snap is None:
            return
        prev = self.snap
        s = self.load(with_numbers=False)
        if prev.numbers and prev.fingerprint()[0] == s.fingerprint()[0]:
            s.numbers = dict(prev.numbers)  # queue numbers depend on the applications alone
        s = self.load()
        self.snap = s
        self._check(prev, s)

    def _check_one_open_application_per_child(self, s: Snap) -> None:
        """A child waits in one queue at a time (the registry refuses a second open application)."""
        open_children = [a.child_iin for a in s.apps.values() if a.status in ("queued", "referred")]
        assert len(open_children) == len(set(open_children)), \
            "a child has two open applications: " + ", ".join(
                f"{a.number} ({a.status})" for a in s.apps.values()
                if a.status in ("queued", "referred") and open_children.count(a.child_iin) > 1)

    def _check_private_seats(self, s: Snap) -> None:
        """A private state-order seat is open to every eligible child until a referral holds it;
        when that referral is annulled the seat returns to that pool (never to 'free', which
        only the queue-order offering of state seats picks up)."""
        for seat in s.seats.values():
            if seat.private:
                assert seat.status in ("open", "taken"), \
                    f"private state-order seat {seat.id} is {seat.status}: no one can claim it any more"

    def _check(self, prev: Snap, s: Snap) -> None:
        now = s.now
        live = s.live_refs()

        # A seat is never issued twice; a child never holds two referrals.
        seats_held = [r.seat_id for r in live]
        assert len(seats_held) == len(set(seats_held)), "a seat is held by two live referrals"
        apps_held = [r.application_id for r in live]
        assert len(apps_held) == len(set(apps_held)), "an application holds two live referrals"
        issued_children = [r.child_iin for r in live if r.status == "issued"]
        assert len(issued_children) == len(set(issued_children)), "a child holds two issued referrals"
        self._check_one_open_application_per_child(s)

        # Seats, offers and referrals agree.
        open_by_seat: dict[int, list[Offer]] = {}
        for o in s.open_offers():
            open_by_seat.setdefault(o.seat_id, []).append(o)
        live_by_seat = {r.seat_id: r for r in live}
        assert len(s.open_offer_apps()) == len(s.open_offers()), "an application has two open offers"
        for seat in s.seats.values():
            n_offers = len(open_by_seat.get(seat.id, []))
            assert n_offers <= 1, f"seat {seat.id} has {n_offers} open offers"
            assert (seat.status == "taken") == (seat.id in live_by_seat), \
                f"seat {seat.id} is {seat.status}, live referral: {live_by_seat.get(seat.id)}"
            assert (seat.status == "offered") == (n_offers == 1), \
                f"seat {seat.id} is {seat.status} with {n_offers} open offers"
        self._check_private_seats(s)

        # Offers: only to waiting, non-stop-listed applications, only while the window lasts.
        for o in s.open_offers():
            app = s.apps[o.application_id]
            assert app.status == "queued", f"open offer {o.id} to a {app.status} application"
            assert not s.stoplisted(app), f"open offer {o.id} to stop-listed {app.number}"
            assert o.expires_at > now, f"offer {o.id} still open after {o.expires_at}"
        for o in s.offers.values():
            if o.id in prev.offers:
                continue
            assert o.made_at == now
            assert o.expires_at == s.cal.window_end_after(now, CLOSE_MIN, 1), \
                f"offer {o.id} made {now} expires {o.expires_at}"
            app = s.apps[o.application_id]
            seat = s.seats[o.seat_id]
            assert (app.district_id, app.birth_year) == (seat.district_id, seat.birth_year)
            assert not seat.private
            assert app.any_kindergarten or seat.kindergarten_id in s.prefs.get(app.id, set())

        # Application status agrees with its referrals.
        live_by_app = {r.application_id: r for r in live}
        for app in s.apps.values():
            r = live_by_app.get(app.id)
            expected = {"referred": "issued", "admitted": "admitted"}.get(app.status)
            assert (r.status if r else None) == expected, \
                f"{app.number} is {app.status} with live referral {r and r.status}"

        # Every referral issued inside a claim window; deadlines as the rules count them.
        for r in s.refs.values():
            assert s.cal.in_window(r.issued_at, OPEN_MIN, CLOSE_MIN) and s.in_window(r.issued_at), \
                f"referral {r.id} issued at {r.issued_at.astimezone(ALMATY)}, outside the claim window"
            if r.status == "annulled":
                assert r.closed_at is not None and r.closed_at <= now
                if r.annul_reason == "no_show":
                    assert r.closed_at == r.showup_due_at, f"referral {r.id} no-show closed {r.closed_at}"
                elif r.annul_reason == "docs_missed":
                    assert r.closed_at == r.docs_due_at, f"referral {r.id} docs-missed closed {r.closed_at}"
                else:
                    assert r.annul_reason == "docs_rejected", r.annul_reason
            # the sweeps leave nothing overdue
            if r.status == "issued":
                assert r.showup_due_at > now, f"referral {r.id} past its show-up deadline, not annulled"
            if r.status in LIVE and r.docs_state == "pending":
                assert r.docs_due_at is not None and r.docs_due_at > now, \
                    f"referral {r.id} past its documents deadline, not annulled"

        # Removal on the 2nd no-show annulment, and only then.
        for app in s.apps.values():
            no_shows = [r for r in s.refs.values() if r.application_id == app.id and r.annul_reason == "no_show"]
            assert (app.status == "removed") == (len(no_shows) >= REMOVAL_AT), \
                f"{app.number} is {app.status} after {len(no_shows)} no-show annulments"
            assert app.missed_referrals == len(no_shows)
            if app.status == "removed":
                removed_at = max(r.closed_at for r in no_shows if r.closed_at is not None)
                assert app.id not in s.open_offer_apps(), f"removed {app.number} has an open offer"
                for r in s.refs.values():
                    if r.application_id == app.id:
                        assert r.issued_at < removed_at, f"removed {app.number} got referral {r.id}"
                for o in s.offers.values():
                    if o.application_id == app.id:
                        assert o.made_at < removed_at, f"removed {app.number} got offer {o.id}"
            if app.stoplist_until is not None:
                assert app.stoplist_until > now, f"{app.number}: stop-list ended but not cleared"
                assert no_shows, f"{app.number} stop-listed without a no-show annulment"
                start = max(r.closed_at for r in no_shows if r.closed_at is not None)
                self.stop_periods.setdefault(app.id, set()).add((start, app.stoplist_until))

        # Nothing while stop-listed: no offer made, no referral issued.
        for app_id, periods in self.stop_periods.items():
            for start, until in periods:
                for o in s.offers.values():
                    if o.application_id == app_id:
                        assert not start <= o.made_at < until, \
                            f"offer {o.id} made {o.made_at} while stop-listed [{start}, {until})"
                for r in s.refs.values():
                    if r.application_id == app_id:
                        assert not start <= r.issued_at < until, \
                            f"referral {r.id} issued {r.issued_at} while stop-listed [{start}, {until})"

        # Queue numbers: the waiting members of each queue are 1..n in the rule order.
        queues: dict[tuple[int, int], list[Application]] = {}
        for app in s.apps.values():
            if app.status == "queued":
                queues.setdefault((app.district_id, app.birth_year), []).append(app)
            else:
                assert s.numbers[app.id] is None
        for key, members in queues.items():
            members.sort(key=qkey)
            got = [s.numbers[a.id] for a in members]
            assert got == list(range(1, len(members) + 1)), \
                f"queue {key}: numbers {got} for {[a.number for a in members]}"

        # Every change of a waiting set is a queue event: a member's events sum to 1, others' to 0.
        for app in s.apps.values():
            assert s.event_sum.get(app.id, 0) == (1 if app.status == "queued" else 0), \
                f"{app.number} ({app.status}): queue events sum to {s.event_sum.get(app.id, 0)}"


SETTINGS = settings(
    max_examples=50,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_queue_rules_hold_under_random_play(sqlite_template: Path) -> None:
    KezekMachine.template = sqlite_template
    run_state_machine_as_test(KezekMachine, settings=SETTINGS)

