"""Every hot read that restates a rule in SQL (``services.reads``) against its ORM reference, on
generated databases: the same answers, on SQLite and on PostgreSQL (KEZEK_TEST_POSTGRES_URL).

Hypothesis draws a world (a bounded number of examples, the same ones on every run in CI) that is
written straight into the tables: rule profiles (the default one's numbers drawn too), districts
following their own profile or the default, state and private kindergartens with seats in every
status, applications in every status with ties in the queue key, open and closed offers, live and
annulled referrals, queue events ahead of and behind each application, preferences, chats that
linked the applications, their last looks, calendar overrides, and a moment. Each read's hot
answer is then compared with its reference's, read through the ORM and the rules' own functions;
where a screen has both paths (/seats, the /status cards), the answers the parent sees are compared
too.

What a parent would notice if a hot statement drifted from its rule: /seats offering a seat the
rules refuse, or hiding one (the district's own profile ignored, a seat of another district), or
a /status card with another number, another state or causes that do not add up."""

from __future__ import annotations

import asyncio
import datetime as dt
import pkgutil
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Boolean, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import Label

import services
import services.reads
from services import queue, status
from services.calendar import ALMATY
from services.clock import FrozenClock
from services.context import DEFAULT_PROFILE_CODE, RULE_FIELDS, Ctx
from services.directory import PROFILE_FIELDS
from services.kezek import Kezek
from services.reads import cards, moves, profile, ranking, seats
from storage.db import Database
from storage.hot import Hot
from storage.models import (
    Application,
    ApplicationPreference,
    Base,
    CalendarDay,
    Chat,
    ChatLink,
    District,
    Group,
    Kindergarten,
    Offer,
    QueueEvent,
    QueueLook,
    Referral,
    RuleProfile,
    Seat,
)
from storage.vocab import AppStatus, DocsState, KindergartenKind, OfferStatus, Privilege, ReferralStatus, SeatStatus
from tests.support.world import almaty

# world and the rows that differ (shrinking these worlds took minutes).
SETTINGS = settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# Moments: a working morning, a Saturday, the evening edge of the window, before Nauryz.
MOMENTS = [almaty(2026, 9, 7, 10, 0), almaty(2026, 9, 12, 11, 0), almaty(2026, 10, 23, 19, 45),
           almaty(2026, 3, 20, 8, 59)]
NUMBERS = ["A1", "A2", "A10", "a1", "B-1", "b_2", "A01", "Z9"]  # mixed case and signs: the collation decides
SUBMITTED = [almaty(2024, 1, 1, 9, 0), almaty(2024, 1, 1, 9, 0, 1), almaty(2024, 2, 1, 12, 0)]
CAUSES = [queue.ARRIVAL, queue.REFERRAL, queue.RETURNED, queue.PRIVILEGE_DROPPED, queue.CHANGED, queue.WITHDRAWN]
APP_STATUSES = [AppStatus.QUEUED, AppStatus.QUEUED, AppStatus.QUEUED, AppStatus.REFERRED, AppStatus.ADMITTED,
                AppStatus.REMOVED, AppStatus.WITHDRAWN]
SEAT_STATUSES = [SeatStatus.OPEN, SeatStatus.OPEN, SeatStatus.OPEN, SeatStatus.FREE, SeatStatus.OFFERED,
                 SeatStatus.TAKEN, SeatStatus.WITHDRAWN]
DOCS_STATES = [DocsState.NOT_REQUIRED, DocsState.PENDING, DocsState.ACCEPTED, DocsState.REJECTED, DocsState.MISSED]
FIRST_CHAT = 7_000


# --- a world ----------------------------------------------------------------------------------------

def _bounds(field: str) -> tuple[int, int]:
    if field in PROFILE_FIELDS:
        return PROFILE_FIELDS[field]
    return {"window_open_minute": (0, 23 * 60), "window_close_minute": (60, 24 * 60)}.get(field, (0, 10))


@st.composite
def rule_values(draw: st.DrawFn) -> dict[str, Any]:
    """A value for every rule field of the profile (whatever columns the model has)."""
    out: dict[str, Any] = {}
    for name in RULE_FIELDS:
        if isinstance(RuleProfile.__table__.c[name].type, Boolean):
            out[name] = draw(st.booleans())
        else:
            out[name] = draw(st.integers(*_bounds(name)))
    if out["window_open_minute"] >= out["window_close_minute"]:
        out["window_open_minute"], out["window_close_minute"] = 9 * 60, 20 * 60
    return out


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    """A world, the rows of its tables as plain values (``_write`` writes them). Every world holds
    the cases a hot statement most easily gets wrong: the first district follows a profile of its
    own, not the default one; the first two districts each have an open private seat; the first two
    applications wait in one queue, the second ahead by privilege though submitted later. The rest
    is drawn."""
    now = draw(st.sampled_from(MOMENTS)) + dt.timedelta(minutes=draw(st.sampled_from([0, 1, 61, 600])))
    today = now.astimezone(ALMATY).date()
    default = draw(rule_values())
    custom = draw(st.lists(rule_values(), min_size=1, max_size=2))
    if custom[0] == default:
        custom[0] = {**default, "private_min_age_years": (default["private_min_age_years"] + 1) % 8}
    district_profiles = [0] + draw(st.lists(st.sampled_from([None, *range(len(custom))]), min_size=1, max_size=2))
    districts = list(range(len(district_profiles)))
    kgs = [{"district": 0, "private": True}, {"district": 0, "private": False}, {"district": 1, "private": True}]
    kgs += [{"district": d, "private": draw(st.booleans())} for d in districts for _ in range(draw(st.integers(0, 2)))]
    for kg in kgs:
        kg["address"] = draw(st.sampled_from(["", "ул. Абая, 1"]))
    seat_rows = []
    for i in range(draw(st.integers(2, 10))):
        kg = [0, 2][i] if i < 2 else draw(st.sampled_from([0, 1, *range(len(kgs))]))
        seat_rows.append({"kg": kg, "birth_year": draw(st.integers(today.year - 6, today.year)),
                          "language": draw(st.sampled_from(["ru", "kk"])),
                          "group_name": draw(st.sampled_from(["", "Солнышко", "2022-ru"])),
                          "status": SeatStatus.OPEN if i < 2 else draw(st.sampled_from(SEAT_STATUSES))})
    numbers = draw(st.lists(st.sampled_from(NUMBERS), min_size=3, max_size=7, unique=True))
    apps = []
    for i, number in enumerate(numbers):
        # Ages around the private kindergartens' ages, most in a few queues (a queue: district, birth year).
        age, shift = draw(st.sampled_from([3, 3, 3, 4, 2, 6, 0])), draw(st.sampled_from([0, 0, 1, -1, 40]))
        birth = today.replace(year=today.year - age) + dt.timedelta(days=shift)
        district = 0 if i < 2 else draw(st.sampled_from([0, 0, *districts]))
        own_kgs = [k for k, kg in enumerate(kgs) if kg["district"] == district]
        preferred = draw(st.lists(st.sampled_from(own_kgs), unique=True, max_size=3)) if own_kgs else []
        apps.append({
            "number": number, "birth_date": birth, "district": district,
            "privilege": draw(st.sampled_from(Privilege.ALL)), "submitted_at": draw(st.sampled_from(SUBMITTED)),
            "status": draw(st.sampled_from(APP_STATUSES)), "docs_state": draw(st.sampled_from(DOCS_STATES)),
            "stoplist_until": draw(st.sampled_from([None, now - dt.timedelta(hours=1), now + dt.timedelta(days=2)])),
            # (the forecast's edges: joined FORECAST_MIN_DAYS ago to the second, inside its window, before it)
            "created_at": now - draw(st.sampled_from([dt.timedelta(0), dt.timedelta(days=3), dt.timedelta(days=7),
                                                      dt.timedelta(days=7, seconds=1), dt.timedelta(days=30),
                                                      dt.timedelta(days=30), dt.timedelta(days=200)])),
            # (the registry sends none for "any kindergarten"; the reads must not show any that are there)
            "any_kindergarten": draw(st.booleans()), "preferred": preferred,
            "offer": draw(st.sampled_from([None, OfferStatus.OPEN, OfferStatus.OPEN, OfferStatus.EXPIRED])),
            "referral": draw(st.sampled_from([None, ReferralStatus.ISSUED, ReferralStatus.ADMITTED,
                                              ReferralStatus.ANNULLED])),
            "referral_docs": draw(st.sampled_from(DOCS_STATES)),
        })
    apps[0].update(status=AppStatus.QUEUED, privilege=draw(st.sampled_from([Privilege.FIRST, Privilege.NONE])),
                   submitted_at=SUBMITTED[0], birth_date=today.replace(year=today.year - 6))
    apps[1].update(status=AppStatus.QUEUED, privilege=Privilege.OUT_OF_TURN, submitted_at=SUBMITTED[-1],
                   birth_date=apps[0]["birth_date"])
    events = []
    for _ in range(draw(st.integers(2, 12))):
        like = draw(st.integers(0, len(apps) - 1))
        events.append({
            "like": like,  # the queue of this application; its key too, or a key drawn
            "own_key": draw(st.booleans()), "own_id": draw(st.booleans()),
            "number": draw(st.sampled_from(NUMBERS)), "submitted_at": draw(st.sampled_from(SUBMITTED)),
            "priv_rank": draw(st.integers(0, 2)),
            # (some at the very moment an application joined or a chat looked: "since" is exclusive)
            "at": now - draw(st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(days=3), dt.timedelta(days=8),
                                              dt.timedelta(days=30), dt.timedelta(days=45), dt.timedelta(days=45),
                                              dt.timedelta(days=95), dt.timedelta(days=300)])),
            "delta": draw(st.sampled_from([1, -1])), "cause": draw(st.sampled_from(CAUSES)),
        })
    chats = draw(st.integers(1, 3))
    # Each application linked to a chat (the cards and /seats are read for linked ones), some to two.
    links = {(a % chats, a) for a in range(len(apps))} | set(draw(st.lists(
        st.tuples(st.integers(0, chats - 1), st.integers(0, len(apps) - 1)), max_size=4)))
    link_rows = [{"chat": c, "app": a, "linked_at": now - dt.timedelta(days=draw(st.sampled_from([1, 1, 5]))),
                  "look": draw(st.sampled_from([None, 1, 2, 3, 7])),
                  "look_at": now - dt.timedelta(days=draw(st.sampled_from([0, 1, 3, 10, 100])))}
                 for c, a in sorted(links)]
    calendar = draw(st.lists(st.tuples(st.sampled_from([0, 1, 2, 3]), st.booleans()), max_size=3,
                             unique_by=lambda x: x[0]))
    return {"now": now, "default": default, "custom": custom, "district_profiles": district_profiles,
            "kgs": kgs, "seats": seat_rows, "apps": apps, "events": events, "chats": chats, "links": link_rows,
            "calendar": [(today + dt.timedelta(days=d), working) for d, working in calendar]}


async def _clear(session: AsyncSession) -> None:
    """Every table empty but the default rule profile."""
    for table in reversed(Base.metadata.sorted_tables):
        if table is RuleProfile.__table__:
            await session.execute(delete(table).where(table.c.code != DEFAULT_PROFILE_CODE))
        else:
            await session.execute(delete(table))


async def _write(db: Database, w: dict[str, Any]) -> None:
    """The world's rows (ids 1, 2, ...), a statement per table."""
    now = w["now"]
    rows: dict[Any, list[dict[str, Any]]] = {model: [] for model in (
        RuleProfile, District, Kindergarten, Group, Seat, Application, ApplicationPreference, Offer, Referral,
        QueueEvent, Chat, ChatLink, QueueLook, CalendarDay)}
    rows[RuleProfile] = [{"id": 1000 + i, "code": f"custom{i}", "name": "", **values}
                         for i, values in enumerate(w["custom"])]
    rows[District] = [{"id": d + 1, "code": f"D{d}", "name_ru": f"Район {d}", "name_kk": f"Аудан {d}",
                       "profile_id": None if prof is None else 1000 + prof}
                      for d, prof in enumerate(w["district_profiles"])]
    rows[Kindergarten] = [{"id": k + 1, "code": f"K{k % 3}{'abc'[k % 3]}{k}", "district_id": kg["district"] + 1,
                           "name_ru": f"Сад {k}", "name_kk": f"Бақша {k}", "address": kg["address"],
                           "kind": KindergartenKind.PRIVATE if kg["private"] else KindergartenKind.STATE,
                           "languages": "ru,kk"}
                          for k, kg in enumerate(w["kgs"])]
    groups: dict[tuple[int, int, str], int] = {}
    for s, seat in enumerate(w["seats"]):
        key = (seat["kg"], seat["birth_year"], seat["language"])
        if key not in groups:
            groups[key] = len(groups) + 1
            rows[Group].append({"id": groups[key], "kindergarten_id": seat["kg"] + 1, "birth_year": seat["birth_year"],
                                "language": seat["language"], "name": seat["group_name"]})
        kg = w["kgs"][seat["kg"]]
        rows[Seat].append({"id": s + 1, "kindergarten_id": seat["kg"] + 1, "group_id": groups[key],
                           "district_id": kg["district"] + 1, "birth_year": seat["birth_year"],
                           "language": seat["language"], "private": kg["private"], "status": seat["status"],
                           "published_at": now - dt.timedelta(days=1), "opened_at": None})
    seat_ids = [seat["id"] for seat in rows[Seat]]
    open_offer_seats: set[int] = set()
    live_seats: set[int] = set()
    for a, app in enumerate(w["apps"]):
        app_id = a + 1
        rows[Application].append({
            "id": app_id, "number": app["number"], "child_iin": f"{app_id:012d}", "child_name": f"Ребёнок {a}",
            "birth_date": app["birth_date"], "birth_year": app["birth_date"].year, "district_id": app["district"] + 1,
            "language": "ru", "privilege": app["privilege"], "priv_rank": Privilege.RANK[app["privilege"]],
            "docs_state": app["docs_state"], "submitted_at": app["submitted_at"], "phone": "+77010000000",
            "email": "parent@example.kz", "status": app["status"], "missed_referrals": 0,
            "stoplist_until": app["stoplist_until"], "any_kindergarten": app["any_kindergarten"], "twin_group": None,
            "created_at": app["created_at"], "updated_at": now})
        rows[ApplicationPreference] += [{"application_id": app_id, "kindergarten_id": k + 1, "rank": rank}
                                        for rank, k in enumerate(app["preferred"])]
        free = [s for s in seat_ids if s not in open_offer_seats]
        if app["offer"] is not None and free:
            seat_id = free[a % len(free)]
            if app["offer"] == OfferStatus.OPEN:
                open_offer_seats.add(seat_id)
            rows[Offer].append({"seat_id": seat_id, "application_id": app_id, "batch": None,
                                "made_at": now - dt.timedelta(hours=3), "expires_at": now + dt.timedelta(hours=a + 1),
                                "status": app["offer"], "closed_at": None})
        free = [s for s in seat_ids if s not in live_seats]
        if app["referral"] is not None and free:
            seat_id = free[(a * 7) % len(free)]
            if app["referral"] in ReferralStatus.LIVE:
                live_seats.add(seat_id)
            seat = w["seats"][seat_id - 1]
            group = groups[(seat["kg"], seat["birth_year"], seat["language"])]
            rows[Referral].append({
                "application_id": app_id, "child_iin": f"{app_id:012d}", "seat_id": seat_id,
                "kindergarten_id": seat["kg"] + 1, "group_id": group,
                "via": "offer", "privilege": Privilege.NONE, "issued_at": now - dt.timedelta(days=2),
                "confirmed_by": "telegram:1", "showup_due_at": now + dt.timedelta(days=3),
                "docs_state": app["referral_docs"],
                "docs_due_at": now + dt.timedelta(days=4) if app["referral_docs"] == DocsState.PENDING else None,
                "status": app["referral"], "closed_at": None, "annul_reason": None})
    for e in w["events"]:
        like = w["apps"][e["like"]]
        own = e["own_key"]
        rows[QueueEvent].append({
            "district_id": like["district"] + 1, "birth_year": like["birth_date"].year, "at": e["at"],
            "priv_rank": Privilege.RANK[like["privilege"]] if own else e["priv_rank"],
            "submitted_at": like["submitted_at"] if own else e["submitted_at"],
            "number": like["number"] if own else e["number"], "delta": e["delta"], "cause": e["cause"],
            "application_id": e["like"] + 1 if e["own_id"] else 10_000})
    rows[Chat] = [{"id": FIRST_CHAT + c, "language": "ru", "created_at": now, "updated_at": now}
                  for c in range(w["chats"])]
    for link in w["links"]:
        rows[ChatLink].append({"chat_id": FIRST_CHAT + link["chat"], "application_id": link["app"] + 1,
                               "linked_at": link["linked_at"], "method": "contact"})
        if link["look"] is not None:
            rows[QueueLook].append({"application_id": link["app"] + 1, "viewer": f"chat:{FIRST_CHAT + link['chat']}",
                                    "number": link["look"], "at": link["look_at"]})
    rows[CalendarDay] = [{"day": day, "working": working, "name": ""} for day, working in w["calendar"]]
    async with db.write() as session:
        await _clear(session)
        await session.execute(update(RuleProfile).where(RuleProfile.code == DEFAULT_PROFILE_CODE).values(w["default"]))
        for model, values in rows.items():
            if values:
                await session.execute(insert(model), values)


def _chats(w: dict[str, Any]) -> list[int]:
    return [FIRST_CHAT + c for c in range(w["chats"] + 1)]  # and one that linked nothing


# --- the checks: each read against its reference ------------------------------------------------------

async def check_profile(db: Database, w: dict[str, Any]) -> None:
    """The profile every district follows, as a hot statement joins it (``profile.joined``)
    and as ``Ctx.profile`` reads it; a district that does not exist follows the default."""
    D = aliased(District)  # (not the districts table ``profile_id_of`` reads in its subquery)
    hot = Hot(select(D.id, *profile.columns()).select_from(D).outerjoin(*profile.joined(D.id)).order_by(D.id))
    async with db.hot() as reader:
        rows = await reader.all(hot)
    async with db.read() as session:
        ctx = await Ctx.open(session, w["now"])
        expected = [profile.rules_from(await ctx.profile(r.id)) for r in rows]
        missing = profile.rules_from(await ctx.profile(999))
    assert [profile.rules_of(r) for r in rows] == expected
    assert expected[0] == profile.Rules(**w["custom"][0]) and missing == profile.Rules(**w["default"])


async def check_seats(db: Database, w: dict[str, Any]) -> None:
    now = w["now"]
    kz = Kezek(db, FrozenClock(now))
    for chat in _chats(w):
        async with db.hot() as reader:
            found = await seats.read(reader, chat, now)
        async with db.read() as session:
            expected = await seats.reference(await Ctx.open(session, now), chat)
        assert found is not None
        assert found[0] == expected, chat
        assert await kz.state_order_choices(chat) == await kz._state_order_choices_read(chat), chat


def _card_row(row: Any, *, counted: bool = True) -> dict[str, Any]:
    out = row._asdict()
    out["preferred"] = cards.preferred_of(row)
    if not counted or row.status != AppStatus.QUEUED:
        out["ahead"] = None  # (a number only for a waiting application)
    return out


async def check_cards(db: Database, w: dict[str, Any]) -> None:
    now = w["now"]
    kz = Kezek(db, FrozenClock(now))
    for chat in _chats(w):
        params = status.card_params(chat, now)
        async with db.hot() as reader:
            counted = await reader.all(cards.CARDS_COUNTED, params)
            plain = await reader.all(cards.CARDS, params)
        async with db.read() as session:
            ctx = await Ctx.open(session, now)
            expected = await cards.reference(ctx, params)
            # The cards a parent sees, from the reference's rows (``status._card``: the rules on columns).
            seen = [await status._card(session, now, r,  # type: ignore[arg-type]
                                       1 + r.ahead if r.status == AppStatus.QUEUED else None,
                                       (r.look_number, r.look_at) if r.look_number is not None else None)
                    for r in expected]
        assert [_card_row(r) for r in counted] == [_card_row(r) for r in expected], chat
        assert [_card_row(r) for r in plain] == [_card_row(r, counted=False) for r in expected], chat
        assert await kz.status_cards(chat) == seen, chat  # (records the looks: last)


async def check_moves(db: Database, w: dict[str, Any]) -> None:
    now = w["now"]
    async with db.read() as session:
        apps = (await session.execute(select(Application).order_by(Application.id))).scalars().all()
        looks = (await session.execute(select(QueueLook))).scalars().all()
        for app in apps:
            moments = [now - dt.timedelta(days=30), now - dt.timedelta(days=400), app.created_at]
            moments += [look.at for look in looks if look.application_id == app.id]
            for since in moments:
                expected = await moves.reference(session, app, since)
                async with db.hot() as reader:
                    assert await moves.move_causes(reader, app, since) == expected, (app.number, since)
                assert await moves.move_causes(session, app, since) == expected, (app.number, since)


async def check_ranking(db: Database, w: dict[str, Any]) -> None:
    async with db.read() as session:
        queues = set((await session.execute(select(Application.district_id, Application.birth_year))).all())
        for district_id, birth_year in sorted(queues | {(1, 1990)}):
            async with db.hot() as reader:
                rows = await reader.all(ranking.RANKING, {"district_id": district_id, "birth_year": birth_year})
            found = (rows[0].version, [(r.id, r.n) for r in rows if r.id is not None])
            assert found == await ranking.reference(session, district_id, birth_year), (district_id, birth_year)


CHECKS: dict[str, Callable[[Database, dict[str, Any]], Awaitable[None]]] = {
    "profile": check_profile, "seats": check_seats, "cards": check_cards, "moves": check_moves,
    "ranking": check_ranking,
}


@pytest.mark.parametrize("read", sorted(CHECKS))
def test_a_hot_read_gives_its_references_answers(read: str, db_url: str) -> None:
    loop = asyncio.new_event_loop()
    db = Database(db_url)

    async def default_profile() -> dict[str, Any]:
        async with db.read() as session:
            row = (await session.execute(
                select(RuleProfile).where(RuleProfile.code == DEFAULT_PROFILE_CODE))).scalar_one()
            return {f: getattr(row, f) for f in RULE_FIELDS}

    async def restore(values: dict[str, Any]) -> None:
        async with db.write() as session:
            await _clear(session)
            await session.execute(update(RuleProfile).where(RuleProfile.code == DEFAULT_PROFILE_CODE).values(values))

    @SETTINGS
    @given(world=worlds())
    def check(world: dict[str, Any]) -> None:
        loop.run_until_complete(_write(db, world))
        loop.run_until_complete(CHECKS[read](db, world))

    default = loop.run_until_complete(default_profile())
    try:
        check()
    finally:
        loop.run_until_complete(restore(default))  # (a PostgreSQL database outlives the test)
        loop.run_until_complete(db.dispose())
        loop.close()


def test_every_read_has_its_check() -> None:
    """A module added to ``services.reads`` without a check here fails."""
    assert {m.name for m in pkgutil.iter_modules(services.reads.__path__)} == set(CHECKS)


def test_a_hot_statement_reading_the_profile_holds_every_field_a_rule_reads() -> None:
    """Each hot statement in ``services.reads`` that selects a field of the rule profile selects
    every field the services read off a profile (``<something>.<field>``), so a rule written
    against a new column cannot meet a hot read that lacks it."""
    fields = set(RULE_FIELDS)
    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(services.__file__).parent.rglob("*.py"))
    read_by_rules = {f for f in fields if re.search(rf"\.{f}\b", source)}
    assert {"window_open_minute", "private_min_age_years", "offer_windows"} <= read_by_rules  # (the search works)
    statements = [value for m in pkgutil.iter_modules(services.reads.__path__)
                  for value in vars(__import__(f"services.reads.{m.name}", fromlist=["_"])).values()
                  if isinstance(value, Hot)]
    reading_profile = []
    for hot in statements:
        columns = [col.element if isinstance(col, Label) else col for col in hot.statement.selected_columns]
        from_profile = {c.key for c in columns if getattr(c, "table", None) is RuleProfile.__table__}
        if from_profile:
            reading_profile.append(hot)
            assert read_by_rules <= from_profile, sorted(read_by_rules - from_profile)
    assert seats.STATE_ORDER in reading_profile
