"""The sandbox's test clock: moving it runs what the scheduler would have run in between, each at
its own moment, so a deadline fires where it would in production."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.sandbox.clock import ClockMoveError, move_clock, schedule_between
from services.calendar import ALMATY
from services.clock import FrozenClock, SandboxClock
from services.kezek import Kezek
from storage.db import Database
from tests.support.world import World, almaty


@pytest.fixture
def sandbox(clock: FrozenClock) -> SandboxClock:
    return SandboxClock(clock.now())


@pytest.fixture
async def skz(db: Database, sandbox: SandboxClock) -> Kezek:
    return Kezek(db, sandbox)


@pytest.fixture
async def sworld(skz: Kezek, clock: FrozenClock) -> World:
    return await World(skz, clock).setup()


def local(at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(at).astimezone(ALMATY)


async def test_an_offer_passes_at_20_00_and_the_seat_goes_to_the_next(skz: Kezek, sworld: World,
                                                                       sandbox: SandboxClock) -> None:
    first, second = sworld.row(), sworld.row()
    await sworld.apps(first, second)
    await sworld.publish(1, "KG1")
    assert len((await skz.queue_view(first["number"])).open_offers) == 1  # until 20:00 today
    result = await move_clock(skz, sandbox, advance=dt.timedelta(hours=12))
    expired = [s for s in result["sweeps"] if s.get("offers_expired")]
    assert len(expired) == 1
    assert local(expired[0]["at"]).time() == dt.time(20, 0, 5)  # at the window's end, not at the move's end
    assert local(result["now"]) >= almaty(2026, 9, 7, 22, 0)
    # The passed seat opened to everyone: the next in line has it among the seats to claim.
    assert await skz.available_seats(second["number"])


async def test_a_missed_show_up_deadline_annuls_the_referral_at_midnight(skz: Kezek, sworld: World,
                                                                         sandbox: SandboxClock) -> None:
    row = sworld.row()
    await sworld.apps(row)
    await sworld.publish(1, "KG1")
    seat = (await skz.available_seats(row["number"]))[0]
    [referral] = await skz.claim(row["number"], seat.seat.id, "sandbox")
    due = referral.showup_due_at
    moved = await move_clock(skz, sandbox, advance=dt.timedelta(days=10))
    annulled = [s for s in moved["sweeps"] if s.get("no_show")]
    assert len(annulled) == 1
    fired = dt.datetime.fromisoformat(annulled[0]["at"])
    assert dt.timedelta(0) < fired - due <= dt.timedelta(seconds=10)  # just after the deadline's end
    view = await skz.queue_view(row["number"])
    assert view.state == "stop_listed"


async def test_the_clock_only_moves_forward_and_not_too_far(skz: Kezek, sworld: World, sandbox: SandboxClock) -> None:
    before = sandbox.now()
    with pytest.raises(ClockMoveError):
        await move_clock(skz, sandbox, to=before - dt.timedelta(hours=1))
    with pytest.raises(ClockMoveError):
        await move_clock(skz, sandbox, advance=dt.timedelta(days=400))
    with pytest.raises(ClockMoveError):
        await move_clock(skz, sandbox, to=dt.datetime(2027, 1, 1))  # noqa: DTZ001 - no offset
    assert sandbox.now() - before < dt.timedelta(minutes=1)  # unmoved


async def test_the_schedule_of_a_day(skz: Kezek, sworld: World) -> None:
    start = almaty(2026, 9, 7, 8, 0)
    moments = await schedule_between(skz, start, start + dt.timedelta(days=1))
    times = [(m.astimezone(ALMATY).strftime("%H:%M:%S"), sorted(jobs)) for m, jobs in moments]
    assert times == [("08:00:05", ["staff_digest"]), ("09:00:05", ["sweep"]), ("10:00:05", ["digest"]),
                     ("18:00:05", ["sweep"]),
                     ("20:00:05", ["sweep"]), ("00:00:05", ["sweep"]), ("00:05:05", ["snapshot"])]


async def test_a_move_is_kept_in_the_database_and_a_restarted_demo_goes_on_from_there(db: Database) -> None:
    """The sandbox's clock is the database's (bot.sandbox.clock.store_clock): a move is kept, and a
    `kezek demo` started again on the same database (no --now) goes on from the moved moment."""
    from bot.sandbox.clock import open_sandbox_clock, stored_offset

    start = dt.datetime.now(ALMATY).replace(microsecond=0) + dt.timedelta(days=30)
    first = await open_sandbox_clock(db, start)
    kz = Kezek(db, first)
    await World(kz, FrozenClock(start)).setup()
    await move_clock(kz, first, advance=dt.timedelta(days=2, hours=3))
    assert await stored_offset(db) == first.offset
    again = await open_sandbox_clock(db)
    assert abs(again.now() - (start + dt.timedelta(days=2, hours=3))) < dt.timedelta(minutes=1)


async def test_a_demo_started_again_with_an_earlier_now_does_not_move_the_clock_back(db: Database) -> None:
    from bot.sandbox.clock import open_sandbox_clock

    start = dt.datetime.now(ALMATY).replace(microsecond=0) + dt.timedelta(days=30)
    first = await open_sandbox_clock(db, start)
    kz = Kezek(db, first)
    await World(kz, FrozenClock(start)).setup()
    await move_clock(kz, first, advance=dt.timedelta(days=3))
    again = await open_sandbox_clock(db, start)  # `kezek demo --now <start>` once more
    assert again.now() >= start + dt.timedelta(days=3)
    later = await open_sandbox_clock(db, start + dt.timedelta(days=10))  # forward: taken
    assert abs(later.now() - (start + dt.timedelta(days=10))) < dt.timedelta(minutes=1)
