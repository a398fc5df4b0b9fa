"""RULES.md: "Your turn", the claim window, the hand-over to everyone, referrals,
state-order private kindergartens, the privilege interleave and twins."""

import datetime as dt

import pytest

from services.calendar import ALMATY
from services.errors import (
    ConfirmationRequired,
    NotEligibleForSeat,
    NotWaiting,
    OfferExpired,
    OutsideClaimWindow,
    SeatNotAvailable,
    TooYoungForPrivate,
)
from storage.models import Offer, Seat
from tests.support.world import World, almaty, outbox


async def test_seat_goes_to_the_first_eligible_and_the_parent_is_alerted(world: World, kz) -> None:
    a, b, c = await world.apps(world.row(preferred=["KG2"]), world.row(), world.row())
    pub = await world.publish(2, kg="KG1")
    # a only wants KG2; b and c accept any kindergarten; one seat each
    assert sorted(n for _, _, n in pub.offers) == [b, c]
    alerts = await outbox(kz, "turn_came")
    assert len(alerts) == 2
    assert alerts[0].payload["expires_at"] == almaty(2026, 9, 7, 20, 0).astimezone(dt.UTC).isoformat()
    pub2 = await world.publish(1, kg="KG2")
    assert [n for _, _, n in pub2.offers] == [a]


async def test_seats_of_another_year_or_district_are_not_offered(world: World) -> None:
    await world.apps(world.row(birth_date=dt.date(2022, 2, 2)), world.row(district="ALM-MED"))
    pub = await world.publish(1, kg="KG1", birth_year=2023)
    assert pub.offers == []
    async with world.kz.reading() as ctx:
        assert (await ctx.session.get(Seat, pub.seat_ids[0])).status == "free"


async def test_free_seat_is_offered_when_someone_becomes_eligible(world: World, kz) -> None:
    pub = await world.publish(1)
    assert pub.offers == []
    (a,) = await world.apps(world.row())
    await kz.run_sweeps()
    assert [o.seat_id for o in (await kz.queue_view(a)).open_offers] == pub.seat_ids


async def test_claim_needs_confirmation_and_changes_nothing_without_it(world: World, kz) -> None:
    (a,) = await world.apps(world.row())
    pub = await world.publish(1)
    with pytest.raises(ConfirmationRequired):
        await kz.claim(a, pub.seat_ids[0], confirmed_by=None)
    assert (await kz.queue_view(a)).state == "offer_open"
    preview = await kz.preview_claim(a, pub.seat_ids[0])
    assert preview.via == "offer"
    assert preview.showup_due_at == almaty(2026, 9, 15, 0, 0)  # end of Mon 14 Sep, 5th working day


async def test_friday_1959_claims_but_2000_does_not(world: World, kz, clock) -> None:
    clock.set(almaty(2026, 9, 11, 12, 0))  # Friday
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(2)
    clock.set(almaty(2026, 9, 11, 19, 59, 59))
    (ref,) = await kz.claim(a, pub.offers[0][1], confirmed_by="tg:1")
    assert ref.status == "issued"
    clock.set(almaty(2026, 9, 11, 20, 0))
    with pytest.raises((OfferExpired, OutsideClaimWindow)):
        await kz.claim(b, pub.offers[1][1], confirmed_by="tg:2")
    assert (await kz.queue_view(b)).state == "offer_open"  # nothing changed until the sweep


async def test_passed_offer_opens_the_seat_to_the_birth_year_and_costs_nothing(world: World, kz, clock) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row(birth_date=dt.date(2022, 1, 1)))
    pub = await world.publish(1)
    seat = pub.seat_ids[0]
    clock.set(almaty(2026, 9, 7, 20, 0))
    done = await kz.run_sweeps()
    assert done["offers_expired"] == 1
    view = await kz.queue_view(a)
    assert (view.state, view.number, view.application.stoplist_until) == ("waiting", 1, None)
    expired = await outbox(kz, "offer_expired")
    opened = await outbox(kz, "seats_open")
    assert [m.application_id for m in expired] == [view.application.id]
    assert len(opened) == 2  # a and b; c is of another birth year
    # night: nobody may claim; the next window is Tuesday 09:00
    clock.set(almaty(2026, 9, 8, 8, 59))
    with pytest.raises(OutsideClaimWindow) as err:
        await kz.claim(b, seat, confirmed_by="tg:b")
    assert err.value.params["opens_at"] == almaty(2026, 9, 8, 9, 0).astimezone(dt.UTC).isoformat()
    with pytest.raises(NotEligibleForSeat):
        await kz.claim(c, seat, confirmed_by="tg:c")
    clock.set(almaty(2026, 9, 8, 9, 0))
    (ref,) = await kz.claim(b, seat, confirmed_by="tg:b")
    assert ref.via == "open"
    with pytest.raises(SeatNotAvailable):  # first confirmed claim won
        await kz.claim(a, seat, confirmed_by="tg:a")
    # the sweep is idempotent: running again writes no second notice
    before = len(await outbox(kz, "seats_open"))
    await kz.run_sweeps()
    assert len(await outbox(kz, "seats_open")) == before


async def test_open_seats_reach_a_whole_queue_read_in_pages(world: World, kz, clock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A passed offer at 20:00 tells every waiting child of the queue (a city's queue can be tens of
    thousands): read and written in pages, each child told once."""
    from services import offers as offers_module

    monkeypatch.setattr(offers_module, "ANNOUNCE_PAGE", 3)
    numbers = await world.apps(*[world.row() for _ in range(8)])
    await world.publish(1)
    clock.set(almaty(2026, 9, 7, 20, 0))
    assert (await kz.run_sweeps())["offers_expired"] == 1
    opened = await outbox(kz, "seats_open")
    views = [await kz.queue_view(n) for n in numbers]
    assert sorted(m.application_id for m in opened) == sorted(v.application.id for v in views)
    await kz.run_sweeps()
    assert len(await outbox(kz, "seats_open")) == len(numbers)


async def test_offer_made_in_the_evening_lives_until_the_next_window_ends(world: World, kz, clock) -> None:
    clock.set(almaty(2026, 9, 11, 21, 30))  # Friday night
    (a,) = await world.apps(world.row())
    pub = await world.publish(1)
    async with kz.reading() as ctx:
        offer = await ctx.session.get(Offer, pub.offers[0][0])
    assert offer.expires_at == almaty(2026, 9, 14, 20, 0)  # Monday's window
    clock.set(almaty(2026, 9, 12, 12, 0))  # Saturday: outside any window
    with pytest.raises(OutsideClaimWindow):
        await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:1")
    await kz.run_sweeps()
    assert (await kz.queue_view(a)).state == "offer_open"
    clock.set(almaty(2026, 9, 14, 9, 0))
    (ref,) = await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:1")
    assert ref.status == "issued"


async def test_profile_may_give_more_windows(kz, clock) -> None:
    world = await World(kz, clock).setup(profile={"offer_windows": 3, "window_open": "06:50"})
    (a,) = await world.apps(world.row())
    pub = await world.publish(1)
    async with kz.reading() as ctx:
        offer = await ctx.session.get(Offer, pub.offers[0][0])
    assert offer.expires_at == almaty(2026, 9, 9, 20, 0)
    clock.set(almaty(2026, 9, 8, 6, 50))
    (ref,) = await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:1")
    assert ref.status == "issued"


async def test_a_seat_is_never_issued_twice_and_a_child_never_holds_two(world: World, kz) -> None:
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(2)
    seat_a = next(s for _, s, n in pub.offers if n == a)
    seat_b = next(s for _, s, n in pub.offers if n == b)
    await kz.claim(a, seat_a, confirmed_by="tg:a")
    with pytest.raises(SeatNotAvailable):
        await kz.claim(b, seat_a, confirmed_by="tg:b")
    with pytest.raises(NotWaiting):
        await kz.claim(a, seat_b, confirmed_by="tg:a")
    with pytest.raises(NotWaiting):  # a replayed confirmation
        await kz.claim(a, seat_a, confirmed_by="tg:a")
    (ref,) = await kz.claim(b, seat_b, confirmed_by="tg:b")
    assert ref.seat_id == seat_b


async def test_claiming_an_open_seat_releases_the_own_offer_to_the_next(world: World, kz, clock) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    first = await world.publish(1)  # offered to a
    clock.set(almaty(2026, 9, 7, 20, 0))
    await kz.run_sweeps()  # a let it pass: open to everyone
    clock.set(almaty(2026, 9, 8, 10, 0))
    second = await world.publish(1)  # offered to a again (first in the queue)
    assert [n for _, _, n in second.offers] == [a]
    await kz.claim(a, first.seat_ids[0], confirmed_by="tg:a")  # a takes the open seat instead
    assert [o.seat_id for o in (await kz.queue_view(b)).open_offers] == second.seat_ids


async def test_state_order_private_seats_age_three_any_queue_number(world: World, kz, clock) -> None:
    clock.set(almaty(2026, 9, 7, 10, 0))
    older = world.row(birth_date=dt.date(2023, 9, 7))  # 3 today
    younger = world.row(birth_date=dt.date(2023, 9, 8))  # 3 tomorrow
    other_district = world.row(birth_date=dt.date(2022, 1, 1), district="ALM-MED")
    first_in_queue = world.row(birth_date=dt.date(2023, 1, 1), submitted=almaty(2023, 2, 1, 9, 0))
    await world.apps(first_in_queue, older, younger, other_district)
    pub = await world.publish(2, kg="PRIV")
    assert pub.private and pub.offers == []  # no offers in queue order
    seats = await kz.available_seats(older["number"], state_order_only=True)
    assert [s.seat.id for s in seats] == pub.seat_ids
    with pytest.raises(TooYoungForPrivate):
        await kz.claim(younger["number"], pub.seat_ids[0], confirmed_by="tg:y")
    with pytest.raises(NotEligibleForSeat):
        await kz.claim(other_district["number"], pub.seat_ids[0], confirmed_by="tg:o")
    (ref,) = await kz.claim(older["number"], pub.seat_ids[0], confirmed_by="tg:o")
    assert ref.via == "state_order" and ref.docs_state == "not_required"
    clock.set(almaty(2026, 9, 8, 10, 0))
    (ref2,) = await kz.claim(younger["number"], pub.seat_ids[1], confirmed_by="tg:y")
    assert ref2.status == "issued"


async def test_privilege_interleave_one_to_three(kz, clock) -> None:
    world = await World(kz, clock).setup(profile={"interleave_general_per_first": 3})
    t = almaty(2024, 1, 1, 9, 0)
    rows = [world.row(f"F{i}", privilege="first", submitted=t + dt.timedelta(hours=i)) for i in range(3)]
    rows += [world.row(f"G{i}", submitted=t + dt.timedelta(hours=i)) for i in range(5)]
    rows += [world.row("O0", privilege="out_of_turn", submitted=t + dt.timedelta(days=9))]
    await world.apps(*rows)
    pub = await world.publish(7)
    assert [n for _, _, n in sorted(pub.offers)] == ["O0", "F0", "G0", "G1", "G2", "F1", "G3"]
    # the owed generals carry over to the next publication
    pub2 = await world.publish(2)
    assert [n for _, _, n in sorted(pub2.offers)] == ["G4", "F2"]


async def test_without_interleave_first_priority_goes_first(world: World) -> None:
    t = almaty(2024, 1, 1, 9, 0)
    await world.apps(world.row("F0", privilege="first", submitted=t), world.row("F1", privilege="first", submitted=t),
                     world.row("G0", submitted=t - dt.timedelta(days=9)))
    pub = await world.publish(2)
    assert sorted(n for _, _, n in pub.offers) == ["F0", "F1"]


async def test_twins_are_offered_only_together(world: World, kz) -> None:
    t = almaty(2024, 1, 1, 9, 0)
    twin1 = world.row("T1", submitted=t, twin_group="TW-1")
    twin2 = world.row("T2", submitted=t + dt.timedelta(minutes=1), twin_group="TW-1")
    after = world.row("Z1", submitted=t + dt.timedelta(days=1))
    await world.apps(twin1, twin2, after)
    one = await world.publish(1)
    assert [n for _, _, n in one.offers] == ["Z1"]  # one seat cannot take both twins
    two = await world.publish(2)
    assert sorted(n for _, _, n in two.offers) == ["T1", "T2"]
    refs = await kz.claim("T1", two.offers[0][1], confirmed_by="tg:parent")
    assert sorted(r.application_id for r in refs) == sorted(
        [(await kz.queue_view("T1")).application.id, (await kz.queue_view("T2")).application.id])
    assert (await kz.queue_view("T2")).state == "referred"


async def test_stop_listed_application_is_skipped_and_cannot_claim(world: World, kz, clock) -> None:
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(1)
    await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:a")
    clock.set(almaty(2026, 9, 15, 9, 30))
    await kz.run_sweeps()  # a missed the show-up deadline: stop-list
    assert (await kz.queue_view(a)).state == "stop_listed"
    # the seat went back to the pool and on to b; a is first in the queue but skipped
    assert [o.seat_id for o in (await kz.queue_view(b)).open_offers] == pub.seat_ids
    assert (await world.publish(1)).offers == []
    assert (await kz.queue_view(a)).open_offers == []


def test_almaty_helper() -> None:
    assert almaty(2026, 1, 1).tzinfo is ALMATY


async def test_annulled_state_order_seat_is_open_again(world: World, kz, clock) -> None:
    a, b = await world.apps(world.row(birth_date=dt.date(2022, 5, 5)), world.row(birth_date=dt.date(2022, 6, 6)))
    pub = await world.publish(1, kg="PRIV", birth_year=2022)
    await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:a")
    clock.set(almaty(2026, 9, 15, 10, 0))  # a never showed up
    await kz.run_sweeps()
    async with kz.reading() as ctx:
        assert (await ctx.session.get(Seat, pub.seat_ids[0])).status == "open"
    (ref,) = await kz.claim(b, pub.seat_ids[0], confirmed_by="tg:b")
    assert ref.via == "state_order"
