"""Two claims racing for one seat: exactly one wins, the other changes nothing."""

import asyncio

from sqlalchemy import func, select

from services.errors import KezekError, NotWaiting, SeatNotAvailable
from services.kezek import Kezek
from storage.db import Database
from storage.models import Referral
from tests.support.world import World, almaty


async def test_two_parents_race_for_one_open_seat(world: World, kz, clock, db_url: str) -> None:
    rounds = 6
    numbers = await world.apps(*[world.row() for _ in range(2 * rounds)])
    pub = await world.publish(rounds)
    clock.set(almaty(2026, 9, 7, 20, 0))
    await kz.run_sweeps()  # every offer passed: the seats are open to the whole birth year
    clock.set(almaty(2026, 9, 8, 10, 0))
    other_db = Database(db_url)
    other = Kezek(other_db, clock)
    try:
        for i, seat in enumerate(pub.seat_ids):
            a, b = numbers[2 * i], numbers[2 * i + 1]
            results = await asyncio.gather(
                kz.claim(a, seat, confirmed_by="tg:a"), other.claim(b, seat, confirmed_by="tg:b"),
                return_exceptions=True)
            wins = [r for r in results if isinstance(r, list)]
            losses = [r for r in results if isinstance(r, BaseException)]
            assert len(wins) == 1, results
            assert len(losses) == 1 and isinstance(losses[0], SeatNotAvailable), losses
    finally:
        await other_db.dispose()
    async with kz.reading() as ctx:
        live = (await ctx.session.execute(select(func.count()).select_from(Referral).where(
            Referral.status == "issued"))).scalar_one()
        seats = (await ctx.session.execute(select(func.count(func.distinct(Referral.seat_id))))).scalar_one()
    assert live == rounds and seats == rounds


async def test_double_press_issues_one_referral(world: World, kz, clock, db_url: str) -> None:
    (a,) = await world.apps(world.row())
    pub = await world.publish(1)
    other_db = Database(db_url)
    try:
        other = Kezek(other_db, clock)
        results = await asyncio.gather(
            kz.claim(a, pub.seat_ids[0], confirmed_by="tg:a"),
            other.claim(a, pub.seat_ids[0], confirmed_by="tg:a"), return_exceptions=True)
    finally:
        await other_db.dispose()
    assert sum(isinstance(r, list) for r in results) == 1
    loss = next(r for r in results if isinstance(r, BaseException))
    assert isinstance(loss, (SeatNotAvailable, NotWaiting)) and isinstance(loss, KezekError)
    async with kz.reading() as ctx:
        assert (await ctx.session.execute(select(func.count()).select_from(Referral))).scalar_one() == 1
