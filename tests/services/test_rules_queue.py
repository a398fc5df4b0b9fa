"""RULES.md, "Queue": order, queue numbers, and why they move."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from services.errors import ApplicationClosed, BulkRejected, ChildAlreadyQueued, InvalidIIN, UnknownDistrict
from storage.models import Application, AuditEntry, OutboxMessage, QueueEvent
from tests.support.world import World, almaty


async def test_order_is_privilege_then_submission_then_number(world: World) -> None:
    t = almaty(2024, 5, 1, 10, 0)
    rows = [
        world.row("N-3", submitted=t),
        world.row("N-2", submitted=t),  # same moment: the number decides
        world.row("F-1", submitted=t + dt.timedelta(days=30), privilege="first"),
        world.row("O-1", submitted=t + dt.timedelta(days=60), privilege="out_of_turn"),
        world.row("N-0", submitted=t - dt.timedelta(days=1)),
    ]
    await world.apps(*rows)
    numbers = {n: await world.number(n) for n in ("O-1", "F-1", "N-0", "N-2", "N-3")}
    assert numbers == {"O-1": 1, "F-1": 2, "N-0": 3, "N-2": 4, "N-3": 5}


async def test_queues_are_per_district_and_birth_year(world: World) -> None:
    a, b, c = await world.apps(world.row(), world.row(birth_date=dt.date(2022, 6, 1)),
                               world.row(district="ALM-MED"))
    assert [await world.number(n) for n in (a, b, c)] == [1, 1, 1]


async def test_number_moves_away_when_a_higher_priority_application_arrives(world: World, clock) -> None:
    (mine,) = await world.apps(world.row())
    first = await world.kz.queue_view(mine, viewer="tg:1")
    assert first.number == 1 and first.previous is None
    clock.advance(hours=1)
    await world.apps(world.row(privilege="first"))
    seen = await world.kz.queue_view(mine, viewer="tg:1")
    assert (seen.number, seen.previous, seen.delta) == (2, 1, 1)
    assert seen.causes == {"arrival": 1}
    # a later application of the same rank lands behind and does not move us
    clock.advance(hours=1)
    await world.apps(world.row(submitted=almaty(2025, 1, 1, 9, 0)))
    again = await world.kz.queue_view(mine, viewer="tg:1")
    assert (again.number, again.delta, again.causes) == (2, 0, {})


async def test_number_moves_toward_one_as_referrals_are_issued_ahead(world: World, clock) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    assert (await world.kz.queue_view(c, viewer="tg:9")).number == 3
    clock.advance(minutes=5)
    pub = await world.publish(2)
    for _offer_id, seat_id, number in pub.offers:
        await world.kz.claim(number, seat_id, confirmed_by="tg:x")
    view = await world.kz.queue_view(c, viewer="tg:9")
    assert (view.number, view.previous, view.delta) == (1, 3, -2)
    assert view.causes == {"referral": -2}
    # each viewer has its own last look (both parents of one child)
    other = await world.kz.queue_view(c, viewer="tg:10")
    assert other.previous is None


async def test_stop_listed_applications_still_count_as_waiting(world: World, clock, kz) -> None:
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(1)
    (ref,) = await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:1")
    assert await world.number(b) == 1
    clock.set(almaty(2026, 9, 15, 0, 0))  # the end of the 5th working day after Monday 7 Sep
    await kz.run_sweeps()
    view = await kz.queue_view(a)
    assert view.state == "stop_listed"
    assert (view.number, await world.number(b)) == (1, 2)  # back at its old place, counted


async def test_history_rebuilds_the_number_over_time(world: World, clock, kz) -> None:
    start = clock.now()
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    clock.advance(hours=1)
    pub = await world.publish(1)
    await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:1")
    clock.advance(hours=1)
    await world.apps(world.row(privilege="out_of_turn"))
    from services.queue import get_application, number_history

    async with kz.reading() as ctx:
        app = await get_application(ctx.session, c)
        points = await number_history(ctx.session, app, start, clock.now())
    assert [n for _, n in points] == [3, 2, 3, 3]


async def test_bad_row_rejects_the_whole_request_and_names_line_and_field(world: World, kz) -> None:
    good = world.row()
    bad_iin = world.row() | {"child_iin": "123456789012"}
    bad_district = world.row() | {"district": "NOWHERE"}
    with pytest.raises(BulkRejected) as err:
        await kz.import_applications([good, bad_iin, bad_district])
    errors = {index: exc for index, exc in err.value.errors}
    assert isinstance(errors[1], InvalidIIN) and errors[1].params["field"] == "child_iin"
    assert isinstance(errors[2], UnknownDistrict)
    async with kz.reading() as ctx:
        assert (await ctx.session.execute(select(func.count()).select_from(Application))).scalar_one() == 0
        assert (await ctx.session.execute(select(func.count()).select_from(QueueEvent))).scalar_one() == 0


async def test_reimport_is_idempotent_and_updates_contacts(world: World, kz) -> None:
    row = world.row()
    await kz.import_applications([row])
    report = await kz.import_applications([row])
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    report = await kz.import_applications([row | {"phone": "8 777 000 11 22"}])
    assert report.updated == 1
    view = await kz.queue_view(row["number"])
    assert view.application.phone == "+77770001122"


async def test_one_child_one_open_application(world: World, kz) -> None:
    row = world.row()
    await kz.import_applications([row])
    with pytest.raises(BulkRejected) as err:
        await kz.import_applications([world.row() | {"child_iin": row["child_iin"],
                                                      "birth_date": row["birth_date"]}])
    assert isinstance(err.value.errors[0][1], ChildAlreadyQueued)


async def test_every_change_is_audited(world: World, kz) -> None:
    (a,) = await world.apps(world.row())
    pub = await world.publish(1)
    await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:77")
    async with kz.reading() as ctx:
        actions = [r.action for r in (await ctx.session.execute(
            select(AuditEntry).order_by(AuditEntry.id))).scalars()]
        claim_actor = (await ctx.session.execute(select(AuditEntry.actor).where(
            AuditEntry.action == "referral.issue"))).scalar_one()
        kinds = [k for k in (await ctx.session.execute(select(OutboxMessage.kind))).scalars()]
    assert {"application.create", "seats.publish", "offer.make", "referral.issue"} <= set(actions)
    assert claim_actor == "tg:77"
    assert sorted(kinds) == ["referral_issued", "registration", "turn_came"]


async def test_look_is_recorded_even_when_someone_writes_during_the_view(world: World, kz, db, monkeypatch) -> None:
    """SQLite refuses to upgrade a read that another writer overtook; the look is then written
    in a transaction of its own (on PostgreSQL the write simply goes through)."""
    from services import queue as queue_module

    (a,) = await world.apps(world.row())
    real = queue_module.record_look
    calls = []

    async def racing_record_look(ctx, app_id, viewer, number):
        if not calls:  # the first attempt: someone else commits a write meanwhile
            await world.kz.set_calendar_day(dt.date(2026, 12, 31), working=False, name="decree")
        calls.append(number)
        await real(ctx, app_id, viewer, number)

    monkeypatch.setattr(queue_module, "record_look", racing_record_look)
    first = await kz.queue_view(a, viewer="tg:5")
    assert first.number == 1
    assert len(calls) == (2 if db.is_sqlite else 1)  # SQLite looked again under the write lock
    monkeypatch.setattr(queue_module, "record_look", real)
    await world.apps(world.row(privilege="first"))
    again = await kz.queue_view(a, viewer="tg:5")
    assert (again.previous, again.number) == (1, 2)


async def test_registry_withdrawal_moves_the_queue_and_passes_the_offer_on(world: World, kz, clock) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    await kz.queue_view(c, viewer="tg:c")
    pub = await world.publish(1)
    clock.advance(minutes=5)
    await kz.withdraw_application(a)
    view_a = await kz.queue_view(a)
    assert (view_a.state, view_a.number, view_a.open_offers) == ("withdrawn", None, [])
    assert [o.seat_id for o in (await kz.queue_view(b)).open_offers] == pub.seat_ids
    seen = await kz.queue_view(c, viewer="tg:c")
    assert (seen.number, seen.delta, seen.causes) == (2, -1, {"withdrawn": -1})
    with pytest.raises(ApplicationClosed):
        await kz.withdraw_application(a)


async def test_registry_moving_an_offered_application_passes_the_offer_on(world: World, kz) -> None:
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(1)
    moved = (await kz.queue_view(a)).application
    row = world.row(a) | {"child_iin": moved.child_iin, "district": "ALM-MED",
                         "submitted_at": moved.submitted_at.isoformat()}
    report = await kz.import_applications([row])
    assert report.updated == 1
    assert (await kz.queue_view(a)).open_offers == []
    assert [o.seat_id for o in (await kz.queue_view(b)).open_offers] == pub.seat_ids
