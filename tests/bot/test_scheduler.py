"""The scheduler's jobs: cron triggers at the right Almaty instants, and what a parent
notices when the test clock crosses 20:00, a deadline, a public holiday or a restart after
downtime. Jobs are fired by hand at their trigger's next fire time (no waiting on real time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select

from bot.jobs import catch_up, make_scheduler, profile_windows, refresh_job, run_scheduler, sweep_job
from bot.sandbox.clock import schedule_between
from services.clock import FrozenClock
from services.kezek import Kezek
from services.queue import get_application, queue_number
from storage.models import QueueSnapshot, Referral
from tests.support.world import World, almaty, app_id, outbox

UTC = dt.UTC


async def scheduler_of(kz: Kezek) -> AsyncIOScheduler:
    return make_scheduler(kz, every_seconds=30, snapshot_hour=0, digest_hour=10,
                          windows=await profile_windows(kz))


def next_fire(scheduler: AsyncIOScheduler, job_id: str, after: dt.datetime) -> dt.datetime:
    job = scheduler.get_job(job_id)
    assert job is not None, job_id
    return job.trigger.get_next_fire_time(None, after)


async def fire(scheduler: AsyncIOScheduler, job_id: str, clock: FrozenClock) -> Any:
    """Move the clock to the job's next fire time (after now) and run the job as the scheduler would."""
    job = scheduler.get_job(job_id)
    assert job is not None, job_id
    clock.set(job.trigger.get_next_fire_time(None, clock.now() + dt.timedelta(seconds=1)))
    return await job.func(*job.args, **job.kwargs)


async def snapshot_rows(kz: Kezek, day: dt.date | None = None) -> dict[int, int]:
    async with kz.reading() as ctx:
        q = select(QueueSnapshot.application_id, QueueSnapshot.number)
        if day is not None:
            q = q.where(QueueSnapshot.day == day)
        return {a: n for a, n in (await ctx.session.execute(q)).all()}


# --- triggers ------------------------------------------------------------------------------------

async def test_cron_jobs_fire_at_almaty_instants(kz: Kezek, world: World) -> None:
    s = await scheduler_of(kz)
    monday_morning = almaty(2026, 9, 7, 10, 0).astimezone(UTC)  # an aware UTC moment
    assert next_fire(s, "window-close-2000", monday_morning) == almaty(2026, 9, 7, 20, 0, 5)
    assert next_fire(s, "window-close-2000", almaty(2026, 9, 7, 20, 0, 6)) == almaty(2026, 9, 8, 20, 0, 5)
    assert next_fire(s, "window-open-0900", monday_morning) == almaty(2026, 9, 8, 9, 0, 5)
    assert next_fire(s, "deadlines", monday_morning) == almaty(2026, 9, 8, 0, 0, 5)
    assert next_fire(s, "snapshot", monday_morning) == almaty(2026, 9, 8, 0, 5)
    assert next_fire(s, "digest", monday_morning) == almaty(2026, 9, 7, 10, 0)
    assert next_fire(s, "digest", almaty(2026, 9, 7, 10, 0, 1)) == almaty(2026, 9, 8, 10, 0)
    # 20:00:05 Almaty is 15:00:05 UTC (UTC+5 all year)
    assert next_fire(s, "window-close-2000", monday_morning).astimezone(UTC).hour == 15
    assert next_fire(s, "window-remind-1800", monday_morning) == almaty(2026, 9, 7, 18, 0, 5)  # offers' reminder
    assert {j.id for j in s.get_jobs()} == {"sweeps", "window-open-0900", "window-close-2000", "window-remind-1800",
                                           "deadlines", "snapshot", "digest", "staff-digest", "windows"}


async def test_the_sandbox_clock_replays_the_schedulers_own_table(kz: Kezek, world: World) -> None:
    """One schedule (bot.jobs.daily_jobs): moving the sandbox's clock over a day runs a job at
    every minute the scheduler's cron jobs fire, and at no other."""
    s = await scheduler_of(kz)
    start = almaty(2026, 9, 7, 0, 0, 30)
    moments = await schedule_between(kz, start, start + dt.timedelta(days=1))
    fired = {next_fire(s, j.id, start) for j in s.get_jobs() if j.id not in ("sweeps", "windows")}
    assert len(fired) == 7  # midnight, 00:05, 08:00, 09:00, 10:00, 18:00, 20:00
    assert {at.replace(second=0) for at, _ in moments} == {at.replace(second=0) for at in fired}


async def test_window_jobs_follow_the_rule_profiles(kz: Kezek, clock: FrozenClock) -> None:
    await World(kz, clock).setup(profile={"window_open": "06:50"})
    s = await scheduler_of(kz)
    ids = {j.id for j in s.get_jobs() if j.id.startswith("window-")}
    assert ids == {"window-open-0900", "window-open-0650", "window-close-2000", "window-remind-1800"}
    assert next_fire(s, "window-open-0650", almaty(2026, 9, 7, 10, 0)) == almaty(2026, 9, 8, 6, 50, 5)
    # an operator changes the profile while the bot runs: the refresh follows it
    await kz.upsert_profiles([{"code": "custom", "window_open": "08:00", "window_close": "18:30"}])
    await refresh_job(s, kz)
    ids = {j.id for j in s.get_jobs() if j.id.startswith("window-")}
    assert ids == {"window-open-0900", "window-close-2000", "window-remind-1800", "window-open-0800",
                   "window-close-1830", "window-remind-1630"}


# --- 20:00 ---------------------------------------------------------------------------------------

async def test_crossing_20_00_closes_the_offer_and_opens_the_seat_to_everyone(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(1)  # Monday 10:00: offered to a until 20:00
    seat = pub.seat_ids[0]
    s = await scheduler_of(kz)
    clock.set(almaty(2026, 9, 7, 19, 59, 59))
    await sweep_job(kz)
    assert (await kz.queue_view(a)).state == "offer_open"
    done = await fire(s, "window-close-2000", clock)
    assert clock.now() == almaty(2026, 9, 7, 20, 0, 5)
    assert done is not None and done["offers_expired"] == 1
    assert (await kz.queue_view(a)).state == "waiting"
    assert [m.application_id for m in await outbox(kz, "offer_expired")] == [await app_id(kz, a)]
    assert await app_id(kz, b) in {m.application_id for m in await outbox(kz, "seats_open")}
    # the next window opens: b, second in line, may take the seat that a let pass
    await fire(s, "window-open-0900", clock)
    assert clock.now() == almaty(2026, 9, 8, 9, 0, 5)
    assert [x.seat.id for x in await kz.available_seats(b)] == [seat]
    (ref,) = await kz.claim(b, seat, confirmed_by="tg:b")
    assert (ref.via, ref.status) == ("open", "issued")


async def test_a_deadline_falls_due_and_the_sweep_annuls_the_referral(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(1)
    (ref,) = await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:a")  # due by the end of Mon 14 Sep
    s = await scheduler_of(kz)
    clock.set(almaty(2026, 9, 14, 12, 0))
    await fire(s, "window-close-2000", clock)  # the last day's evening: still valid
    assert (await kz.queue_view(a)).state == "referred"
    await fire(s, "deadlines", clock)
    assert clock.now() == almaty(2026, 9, 15, 0, 0, 5)
    view = await kz.queue_view(a)
    assert view.state == "stop_listed"
    [annulled] = await outbox(kz, "referral_annulled")
    assert annulled.application_id == view.application.id
    assert annulled.payload["effective_at"] == almaty(2026, 9, 15).astimezone(UTC).isoformat()
    # the seat went back to the pool and on to b
    assert (await kz.queue_view(b)).state == "offer_open"
    async with kz.reading() as ctx:
        assert (await ctx.session.get(Referral, ref.id)).status == "annulled"


# --- a public holiday ----------------------------------------------------------------------------

async def test_across_a_holiday_nothing_closes_or_opens_early(kz: Kezek, world: World, clock: FrozenClock) -> None:
    clock.set(almaty(2026, 12, 15, 20, 30))  # Tuesday evening; Wednesday 16 Dec is Independence Day
    a, b = await world.apps(world.row(), world.row())
    pub = await world.publish(1)  # the offer lives until the next window ends: Thursday 17 Dec 20:00
    seat = pub.seat_ids[0]
    s = await scheduler_of(kz)
    await fire(s, "deadlines", clock)
    await fire(s, "window-open-0900", clock)
    assert clock.now() == almaty(2026, 12, 16, 9, 0, 5)
    await fire(s, "window-close-2000", clock)
    assert clock.now() == almaty(2026, 12, 16, 20, 0, 5)
    assert (await kz.queue_view(a)).state == "offer_open"  # the holiday's 20:00 closes nothing
    assert await outbox(kz, "offer_expired") == [] and await outbox(kz, "seats_open") == []
    assert await outbox(kz, "reminder_offer") == []
    await fire(s, "window-open-0900", clock)  # Thursday
    clock.set(almaty(2026, 12, 17, 18, 0))
    await sweep_job(kz)
    assert [m.application_id for m in await outbox(kz, "reminder_offer")] == [await app_id(kz, a)]
    await fire(s, "window-close-2000", clock)
    assert clock.now() == almaty(2026, 12, 17, 20, 0, 5)
    assert (await kz.queue_view(a)).state == "waiting"
    assert [x.seat.id for x in await kz.available_seats(b)] == [seat]


async def test_reminder_lands_on_the_working_day_before_a_holiday(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    clock.set(almaty(2026, 12, 9, 10, 0))  # Wednesday: 10, 11, 14, 15, (16 off), 17 -> due end of Thu 17
    (a,) = await world.apps(world.row())
    pub = await world.publish(1)
    (ref,) = await kz.claim(a, pub.seat_ids[0], confirmed_by="tg:a")
    assert ref.showup_due_at == almaty(2026, 12, 18)
    s = await scheduler_of(kz)
    clock.set(almaty(2026, 12, 14, 12, 0))
    await fire(s, "window-close-2000", clock)  # Monday evening
    await fire(s, "deadlines", clock)
    assert await outbox(kz, "reminder_showup") == []
    await fire(s, "window-open-0900", clock)  # Tuesday 15 Dec 09:00:05, the working day before
    assert clock.now() == almaty(2026, 12, 15, 9, 0, 5)
    [reminder] = await outbox(kz, "reminder_showup")
    assert reminder.payload["due_at"] == almaty(2026, 12, 18).astimezone(UTC).isoformat()
    for job in ("window-close-2000", "window-open-0900", "window-open-0900"):  # through the holiday
        await fire(s, job, clock)
    assert len(await outbox(kz, "reminder_showup")) == 1


# --- restart after downtime ----------------------------------------------------------------------

async def test_restart_during_downtime_catches_up_once(kz: Kezek, world: World, clock: FrozenClock) -> None:
    a, b, c = await world.apps(world.row(), world.row(), world.row())
    pub = await world.publish(2)  # Monday 10:00: offers to a and b until 20:00
    seat_a = next(seat for _, seat, n in pub.offers if n == a)
    (ref,) = await kz.claim(a, seat_a, confirmed_by="tg:a")  # due by the end of Mon 14 Sep
    assert await snapshot_rows(kz) == {}
    # the bot goes down on Monday afternoon and comes back on Tuesday 15 Sep at 08:00
    later = FrozenClock(almaty(2026, 9, 15, 8, 0))
    kz2 = Kezek(kz.db, later)
    await catch_up(kz2)
    assert (await kz2.queue_view(a)).state == "stop_listed"  # the deadline passed while down
    assert [m.application_id for m in await outbox(kz2, "referral_annulled")] == [await app_id(kz2, a)]
    assert [m.application_id for m in await outbox(kz2, "offer_expired")] == [await app_id(kz2, b)]
    assert await app_id(kz2, c) in {m.application_id for m in await outbox(kz2, "seats_open")}
    today = await snapshot_rows(kz2, dt.date(2026, 9, 15))
    assert today and set(today) == {await app_id(kz2, n) for n in (a, b, c)}
    notices = [(m.dedupe_key, m.kind) for m in await outbox(kz2)]
    states = [(await kz2.queue_view(n)).state for n in (a, b, c)]
    # a second start (or a second instance) changes nothing more
    await catch_up(kz2)
    await catch_up(Kezek(kz.db, FrozenClock(almaty(2026, 9, 15, 8, 1))))
    assert [(m.dedupe_key, m.kind) for m in await outbox(kz2)] == notices
    assert [(await kz2.queue_view(n)).state for n in (a, b, c)] == states
    assert await snapshot_rows(kz2) == today


async def test_two_instances_catching_up_at_once_change_things_once(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    a, b = await world.apps(world.row(), world.row())
    await world.publish(1)
    late = almaty(2026, 9, 8, 0, 30)
    one, two = Kezek(kz.db, FrozenClock(late)), Kezek(kz.db, FrozenClock(late))
    await asyncio.gather(catch_up(one), catch_up(two))
    await catch_up(one)  # whatever one of them left to the next run
    assert len(await outbox(kz, "offer_expired")) == 1
    assert len([m for m in await outbox(kz, "seats_open") if m.application_id == await app_id(kz, b)]) == 1
    async with kz.reading() as ctx:
        dupes = (await ctx.session.execute(select(QueueSnapshot.application_id, func.count())
                                           .group_by(QueueSnapshot.day, QueueSnapshot.application_id)
                                           .having(func.count() > 1))).all()
    assert dupes == [] and len(await snapshot_rows(kz, dt.date(2026, 9, 8))) == 2


async def test_run_scheduler_catches_up_at_start(kz: Kezek, world: World, clock: FrozenClock) -> None:
    (a,) = await world.apps(world.row())
    await world.publish(1)
    clock.set(almaty(2026, 9, 8, 8, 0))  # the bot was down at 20:00
    task = asyncio.create_task(run_scheduler(kz, every_seconds=3600, snapshot_hour=0, digest_hour=10))
    try:
        # The catch-up runs before anything else (a few milliseconds); a deadline, for a busy machine.
        deadline = asyncio.get_running_loop().time() + 30
        while not await snapshot_rows(kz):
            assert asyncio.get_running_loop().time() < deadline, "no catch-up within 30 s"
            await asyncio.sleep(0.01)
        assert (await kz.queue_view(a)).state == "waiting"
        assert len(await outbox(kz, "offer_expired")) == 1
        assert await snapshot_rows(kz, dt.date(2026, 9, 8)) == {await app_id(kz, a): 1}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- the snapshot and the digest -----------------------------------------------------------------

async def test_nightly_snapshot_matches_queue_numbers_and_is_written_once(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    rows = [world.row(), world.row(privilege="first"), world.row(), world.row(privilege="out_of_turn"),
            world.row(birth_date=dt.date(2022, 5, 5)), world.row(birth_date=dt.date(2022, 6, 6)),
            world.row(district="ALM-MED"), world.row(), world.row(district="ALM-MED", privilege="first")]
    numbers = await world.apps(*rows)
    pub = await world.publish(1)
    taken = pub.offers[0][2]
    await kz.claim(taken, pub.seat_ids[0], confirmed_by="tg:x")  # referred: no longer waiting
    s = await scheduler_of(kz)
    written = await fire(s, "snapshot", clock)
    assert clock.now() == almaty(2026, 9, 8, 0, 5)
    night = dt.date(2026, 9, 8)
    snap = await snapshot_rows(kz, night)
    assert written == len(snap) == len(numbers) - 1
    async with kz.reading() as ctx:
        for n in numbers:
            app = await get_application(ctx.session, n)
            assert snap.get(app.id) == await queue_number(ctx.session, app), n
    assert (await app_id(kz, taken)) not in snap
    # the same day again (a restart, a second instance, a late run) changes nothing, even after
    # the queue moved
    await kz.withdraw_application(numbers[3] if numbers[3] != taken else numbers[0])
    assert await kz.snapshot_queue() == 0
    assert await snapshot_rows(kz, night) == snap
    # the next night has its own numbers
    await fire(s, "snapshot", clock)
    assert clock.now() == almaty(2026, 9, 9, 0, 5)
    nxt = await snapshot_rows(kz, dt.date(2026, 9, 9))
    assert len(nxt) == len(snap) - 1 and nxt != snap


async def test_digest_once_a_day_at_its_hour(kz: Kezek, world: World, clock: FrozenClock) -> None:
    from sqlalchemy import update

    from storage.models import Chat
    from tests.support.world import link

    ahead, mine = world.row(), world.row()
    await world.apps(ahead, mine)
    await link(kz, mine, 1001)
    async with kz.unit() as ctx:
        await ctx.session.execute(update(Chat).where(Chat.id == 1001).values(notify_moves=True))
    s = await scheduler_of(kz)
    await fire(s, "digest", clock)  # Tuesday 10:00: remembers number 2
    assert clock.now() == almaty(2026, 9, 8, 10, 0)
    await kz.withdraw_application(ahead["number"])
    for _ in range(3):  # the interval sweeps tell nothing; only the digest does
        await fire(s, "window-close-2000", clock)
    assert await outbox(kz, "queue_moved") == []
    await fire(s, "digest", clock)
    await fire(s, "digest", clock)
    [moved] = await outbox(kz, "queue_moved")
    assert (moved.payload["previous"], moved.payload["number"]) == (2, 1)


async def test_a_failing_job_logs_without_personal_data_and_the_next_run_works(
        kz: Kezek, world: World, clock: FrozenClock, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    row = world.row()
    (a,) = await world.apps(row)
    await world.publish(1)
    clock.set(almaty(2026, 9, 7, 20, 0, 5))

    async def broken() -> dict[str, int]:
        raise RuntimeError(f"boom {row['child_iin']} {row['phone']}")

    monkeypatch.setattr(kz, "run_sweeps", broken)
    with caplog.at_level(logging.INFO, logger="kezek.scheduler"):
        assert await sweep_job(kz) is None
    assert "sweep failed: RuntimeError" in caplog.text
    assert row["child_iin"] not in caplog.text and row["phone"] not in caplog.text
    assert (await kz.queue_view(a)).state == "offer_open"
    monkeypatch.undo()
    clock.advance(seconds=30)
    await sweep_job(kz)
    assert (await kz.queue_view(a)).state == "waiting"
