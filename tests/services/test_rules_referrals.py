"""RULES.md, "Show-up" and "Privilege documents": the show-up deadline, the stop-list, removal
on the second annulment, privilege documents (and which outcome decides when both deadlines are
missed), admission, and operator calendar decrees."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from services.errors import (
    DocumentsNotPending,
    DocumentsPending,
    ReferralNotActive,
    ShowUpDeadlinePassed,
    StopListed,
)
from storage.models import OutboxMessage, Referral, Seat
from tests.support.world import World, almaty


async def take_seat(world: World, number: str, **publish) -> Referral:
    pub = await world.publish(1, **publish)
    seat = next(s for _, s, n in pub.offers if n == number)
    (ref,) = await world.kz.claim(number, seat, confirmed_by="tg:parent")
    return ref


async def kinds(kz, application_id: int) -> list[str]:
    async with kz.reading() as ctx:
        return list((await ctx.session.execute(select(OutboxMessage.kind).where(
            OutboxMessage.application_id == application_id).order_by(OutboxMessage.id))).scalars())


async def test_admission_on_the_last_minute_and_not_after(world: World, kz, clock) -> None:
    a, b = await world.apps(world.row(), world.row())
    ref_a = await take_seat(world, a)  # Monday 7 Sep: due by the end of Monday 14 Sep
    ref_b = await take_seat(world, b)
    assert ref_a.showup_due_at == almaty(2026, 9, 15, 0, 0)
    clock.set(almaty(2026, 9, 14, 23, 59, 59))
    admitted = await kz.admit(ref_a.id)
    assert admitted.status == "admitted"
    assert (await kz.queue_view(a)).state == "admitted"
    with pytest.raises(ReferralNotActive):
        await kz.admit(ref_a.id)
    clock.set(almaty(2026, 9, 15, 0, 0))
    with pytest.raises(ShowUpDeadlinePassed):
        await kz.admit(ref_b.id)


async def test_missed_show_up_annuls_stop_lists_and_returns_the_seat(world: World, kz, clock) -> None:
    a, b = await world.apps(world.row(), world.row())
    ref = await take_seat(world, a)
    clock.set(almaty(2026, 9, 14, 23, 59))
    assert (await kz.run_sweeps())["no_show"] == 0
    # the sweep runs late (the service was down): the outcome is dated by the deadline
    clock.set(almaty(2026, 9, 16, 11, 0))
    assert (await kz.run_sweeps())["no_show"] == 1
    async with kz.reading() as ctx:
        annulled = await ctx.session.get(Referral, ref.id)
        seat = await ctx.session.get(Seat, ref.seat_id)
    assert (annulled.status, annulled.annul_reason) == ("annulled", "no_show")
    assert annulled.closed_at == almaty(2026, 9, 15, 0, 0)
    assert seat.status == "offered"  # back in the pool and offered to b
    view = await kz.queue_view(a)
    # dated Tuesday 15 Sep; 10 working days after it: 16..18, 21..25, 28, 29 -> end of Tue 29 Sep
    assert view.state == "stop_listed"
    assert view.application.stoplist_until == almaty(2026, 9, 30, 0, 0)
    assert (view.number, view.application.missed_referrals) == (1, 1)
    assert (await kz.queue_view(b)).state == "offer_open"
    # (a reminder went out the day before the deadline)
    assert await kinds(kz, view.application.id) == ["registration", "turn_came", "referral_issued",
                                                    "reminder_showup", "referral_annulled"]
    assert (await kz.run_sweeps())["no_show"] == 0  # idempotent


async def test_stop_list_blocks_offers_and_claims_until_its_end(world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row())
    await take_seat(world, a)
    clock.set(almaty(2026, 9, 15, 10, 0))
    await kz.run_sweeps()
    # the returned seat found no one: a is stop-listed; it is open for nobody else either
    async with kz.reading() as ctx:
        free = (await ctx.session.execute(select(Seat).where(Seat.status == "free"))).scalars().all()
    assert len(free) == 1
    clock.set(almaty(2026, 9, 29, 19, 0))
    assert (await world.publish(1)).offers == []
    with pytest.raises(StopListed):
        await kz.claim(a, free[0].id, confirmed_by="tg:parent")
    clock.set(almaty(2026, 9, 30, 0, 0))
    done = await kz.run_sweeps()
    assert done["stoplists_ended"] == 1
    view = await kz.queue_view(a)
    assert view.state == "offer_open" and view.application.stoplist_until is None
    assert "stoplist_ended" in await kinds(kz, view.application.id)


async def test_second_annulment_removes_the_application(world: World, kz, clock) -> None:
    a, b = await world.apps(world.row(), world.row())
    await take_seat(world, a)
    clock.set(almaty(2026, 9, 15, 10, 0))
    await kz.run_sweeps()
    clock.set(almaty(2026, 9, 30, 10, 0))
    await kz.run_sweeps()  # stop-list over; b holds the old seat's offer, a gets a new one
    ref2 = await take_seat(world, a)
    assert ref2.showup_due_at == almaty(2026, 10, 8, 0, 0)
    clock.set(almaty(2026, 10, 8, 0, 0))
    await kz.run_sweeps()
    view = await kz.queue_view(a)
    assert (view.state, view.number, view.application.missed_referrals) == ("removed", None, 2)
    assert "removed" in await kinds(kz, view.application.id)
    clock.set(almaty(2026, 10, 8, 10, 0))
    assert a not in [n for _, _, n in (await world.publish(1)).offers]


async def test_removal_threshold_comes_from_the_profile(kz, clock) -> None:
    world = await World(kz, clock).setup(profile={"removal_on_annulment": 1, "stoplist_working_days": 3})
    (a,) = await world.apps(world.row())
    await take_seat(world, a)
    clock.set(almaty(2026, 9, 15, 0, 0))
    await kz.run_sweeps()
    assert (await kz.queue_view(a)).state == "removed"


async def test_holiday_pushes_the_show_up_deadline(world: World, kz, clock) -> None:
    clock.set(almaty(2026, 12, 11, 10, 0))  # Friday before Independence Day (Wed 16 Dec)
    (a,) = await world.apps(world.row())
    ref = await take_seat(world, a)
    # 14, 15, (16 off), 17, 18, 21 -> end of Monday 21 Dec
    assert ref.showup_due_at == almaty(2026, 12, 22, 0, 0)


async def test_operator_decree_moves_deadlines(world: World, kz, clock) -> None:
    await kz.set_calendar_day(dt.date(2026, 9, 10), working=False, name="Курбан айт")
    (a,) = await world.apps(world.row())
    ref = await take_seat(world, a)
    assert ref.showup_due_at == almaty(2026, 9, 16, 0, 0)  # one day later than without the decree
    await kz.set_calendar_day(dt.date(2026, 9, 12), working=True, name="рабочая суббота")
    clock.set(almaty(2026, 9, 12, 12, 0))
    (b,) = await world.apps(world.row())
    pub = await world.publish(1)
    (ref_b,) = await kz.claim(b, pub.seat_ids[0], confirmed_by="tg:b")  # a working Saturday: window open
    assert ref_b.status == "issued"


async def test_privilege_documents_accepted_in_time(world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row(privilege="first"))
    ref = await take_seat(world, a)
    assert (ref.docs_state, ref.privilege) == ("pending", "first")
    assert ref.docs_due_at == almaty(2026, 9, 15, 0, 0)
    clock.set(almaty(2026, 9, 14, 18, 0))
    await kz.decide_documents(ref.id, accepted=True)
    await kz.admit(ref.id)
    clock.set(almaty(2026, 9, 20, 0, 0))
    await kz.run_sweeps()
    view = await kz.queue_view(a)
    assert view.state == "admitted" and view.application.privilege == "first"


async def test_tenth_calendar_day_comes_before_the_fifth_working_day(world: World, kz, clock) -> None:
    clock.set(almaty(2026, 3, 19, 11, 0))  # Thursday before Nauryz (21-25 March off)
    g = world.row(submitted=almaty(2024, 1, 1, 9, 0))
    p = world.row(privilege="out_of_turn", submitted=almaty(2024, 6, 1, 9, 0))
    await world.apps(g, p)
    ref = await take_seat(world, p["number"])
    # 5th working day: Tue 31 March; 10th calendar day: Sun 29 March -> the earlier one
    assert ref.docs_due_at == almaty(2026, 3, 30, 0, 0)
    assert ref.showup_due_at == almaty(2026, 4, 1, 0, 0)
    clock.set(almaty(2026, 3, 29, 23, 59))
    await kz.run_sweeps()
    assert (await kz.queue_view(p["number"])).state == "referred"
    clock.set(almaty(2026, 3, 30, 0, 0))
    with pytest.raises(DocumentsNotPending):
        await kz.decide_documents(ref.id, accepted=True)
    done = await kz.run_sweeps()
    assert done["docs_missed"] == 1
    view = await kz.queue_view(p["number"])
    # moved to the general queue: privilege dropped, submission kept, no stop-list, no strike
    assert (view.state, view.application.privilege, view.number) == ("waiting", "none", 2)
    assert (await kz.queue_view(g["number"])).state == "offer_open"  # the freed seat went to g
    assert view.application.stoplist_until is None and view.application.missed_referrals == 0
    assert view.application.submitted_at == almaty(2024, 6, 1, 9, 0)
    assert "privilege_dropped" in await kinds(kz, view.application.id)


async def test_rejected_documents_annul_at_once_without_stop_list(world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row(privilege="first"))
    ref = await take_seat(world, a)
    clock.advance(hours=2)
    await kz.decide_documents(ref.id, accepted=False)
    async with kz.reading() as ctx:
        annulled = await ctx.session.get(Referral, ref.id)
    assert (annulled.status, annulled.annul_reason, annulled.docs_state) == ("annulled", "docs_rejected", "rejected")
    view = await kz.queue_view(a)
    assert view.application.privilege == "none" and view.application.stoplist_until is None
    assert view.state == "offer_open"  # the freed seat went to the first in line: a itself
    with pytest.raises(DocumentsNotPending):
        await kz.decide_documents(ref.id, accepted=True)


async def outcome(kz, number: str, ref_id: int) -> tuple[str | None, str, bool, list[str]]:
    """What the parent lives with after a sweep: the annulment's reason, the privilege, whether
    the child is on the stop-list, and the annulment notices written after the referral."""
    async with kz.reading() as ctx:
        ref = await ctx.session.get(Referral, ref_id)
    view = await kz.queue_view(number)
    written = await kinds(kz, view.application.id)
    after = written[written.index("referral_issued") + 1:]
    return (ref.annul_reason, view.application.privilege, view.application.stoplist_until is not None,
            [k for k in after if k in ("privilege_dropped", "referral_annulled", "removed")])


# The rules (RULES.md, "Privilege documents"): while documents are due and not accepted, a
# documents deadline on or before the show-up deadline decides -- annulled for missing
# documents, general queue, no stop-list; never both penalties. Documents accepted and the
# child not admitted: the show-up outcome.
async def test_documents_deadline_the_same_day_as_show_up_gives_the_documents_outcome(
        world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row(privilege="first"))
    ref = await take_seat(world, a)  # Monday 7 Sep: both deadlines end on Monday 14 Sep
    assert ref.docs_due_at == ref.showup_due_at == almaty(2026, 9, 15, 0, 0)
    clock.set(almaty(2026, 9, 15, 0, 1))
    done = await kz.run_sweeps()
    assert (done["no_show"], done["docs_missed"]) == (0, 1)
    assert await outcome(kz, a, ref.id) == ("docs_missed", "none", False, ["privilege_dropped"])
    view = await kz.queue_view(a)
    assert view.application.missed_referrals == 0  # no strike toward removal either


async def test_documents_deadline_before_show_up_gives_the_documents_outcome(world: World, kz, clock) -> None:
    clock.set(almaty(2026, 4, 30, 11, 0))  # Thursday before the May holidays
    (a,) = await world.apps(world.row(privilege="first", birth_date=dt.date(2022, 5, 1)))
    ref = await take_seat(world, a, birth_year=2022)
    assert ref.docs_due_at == almaty(2026, 5, 11, 0, 0)  # the 10th calendar day: Sunday 10 May
    assert ref.showup_due_at == almaty(2026, 5, 13, 0, 0)  # 4, 5, 6, 8, 12 May (11th: Victory Day moved)
    clock.set(almaty(2026, 5, 13, 0, 1))  # a sweep that finds both passed at once
    done = await kz.run_sweeps()
    assert (done["no_show"], done["docs_missed"]) == (0, 1)
    assert await outcome(kz, a, ref.id) == ("docs_missed", "none", False, ["privilege_dropped"])


async def test_documents_accepted_and_show_up_missed_gives_the_show_up_outcome(world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row(privilege="first"))
    ref = await take_seat(world, a)
    clock.set(almaty(2026, 9, 10, 12, 0))
    await kz.decide_documents(ref.id, accepted=True)
    clock.set(almaty(2026, 9, 15, 0, 1))
    done = await kz.run_sweeps()
    assert (done["no_show"], done["docs_missed"]) == (1, 0)
    # documents accepted: the privilege stays; the missed show-up stop-lists
    assert await outcome(kz, a, ref.id) == ("no_show", "first", True, ["referral_annulled"])


async def test_documents_due_after_show_up_the_show_up_decides(kz, clock) -> None:
    # A profile whose documents may come later than the show-up deadline: the show-up passes
    # first, with documents still due -- the no-show outcome, and the privilege was never lost.
    world = await World(kz, clock).setup({"showup_working_days": 2, "docs_working_days": 5,
                                          "docs_calendar_days": 10})
    (a,) = await world.apps(world.row(privilege="first"))
    ref = await take_seat(world, a)
    assert ref.showup_due_at < ref.docs_due_at
    clock.set(ref.showup_due_at + dt.timedelta(minutes=1))
    done = await kz.run_sweeps()
    assert (done["no_show"], done["docs_missed"]) == (1, 0)
    assert await outcome(kz, a, ref.id) == ("no_show", "first", True, ["referral_annulled"])


async def test_general_referral_needs_no_documents(world: World, kz) -> None:
    (a,) = await world.apps(world.row())
    ref = await take_seat(world, a)
    assert ref.docs_state == "not_required" and ref.docs_due_at is None
    with pytest.raises(DocumentsNotPending):
        await kz.decide_documents(ref.id, accepted=False)


async def test_every_notice_is_written_once(world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row())
    await take_seat(world, a)
    for hour in (0, 1, 2):
        clock.set(almaty(2026, 9, 15, hour, 0))
        await kz.run_sweeps()
    async with kz.reading() as ctx:
        dupes = (await ctx.session.execute(select(OutboxMessage.dedupe_key, func.count()).group_by(
            OutboxMessage.dedupe_key).having(func.count() > 1))).all()
        annulled = (await ctx.session.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "referral_annulled"))).scalar_one()
    assert dupes == [] and annulled == 1


async def test_admission_waits_for_pending_privilege_documents(world: World, kz, clock) -> None:
    (a,) = await world.apps(world.row(privilege="out_of_turn"))
    ref = await take_seat(world, a)
    clock.advance(hours=1)
    with pytest.raises(DocumentsPending):
        await kz.admit(ref.id)
    assert (await kz.queue_view(a)).state == "referred"
    await kz.decide_documents(ref.id, accepted=True)
    assert (await kz.admit(ref.id)).status == "admitted"


async def test_twins_of_mixed_privilege_each_get_their_own_documents_rule(world: World, kz) -> None:
    t = almaty(2024, 1, 1, 9, 0)
    await world.apps(world.row("P1", privilege="first", submitted=t, twin_group="TW"),
                     world.row("G1", submitted=t, twin_group="TW"))
    pub = await world.publish(2)
    seat_of_general = next(s for _, s, n in pub.offers if n == "G1")
    refs = {r.application_id: r for r in await kz.claim("G1", seat_of_general, confirmed_by="tg:parent")}
    privileged = refs[(await kz.queue_view("P1")).application.id]
    general = refs[(await kz.queue_view("G1")).application.id]
    assert (privileged.docs_state, privileged.privilege) == ("pending", "first")
    assert privileged.docs_due_at == almaty(2026, 9, 15, 0, 0)
    assert (general.docs_state, general.docs_due_at) == ("not_required", None)
