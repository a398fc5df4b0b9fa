"""The sandbox's clock is the sandbox's, not a process's: moved by the API's
clock route or the console's ``!advance``, it is kept in the sandbox's database, and every other
``kezek`` command on that database (``kezek seats publish`` from a second terminal, as the README
says) runs at the sandbox's moment. A production database is unaffected."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys

from sqlalchemy import select

from bot.sandbox.clock import follow_stored_clock, move_clock, open_sandbox_clock, stored_offset, window_hint
from locales import gettext
from locales.formats import format_date, format_datetime, zone_text
from services.calendar import ALMATY
from services.clock import FrozenClock, SystemClock
from services.errors import OutsideClaimWindow
from services.kezek import Kezek
from storage.db import Database
from storage.models import Offer
from storage.vocab import OfferStatus
from tests.support import ROOT
from tests.support.world import World


def monday_ahead(days: int = 14) -> dt.datetime:
    """A Monday at 10:00 in Almaty at least ``days`` ahead of real time (inside the claim window)."""
    day = (dt.datetime.now(ALMATY) + dt.timedelta(days=days)).date()
    day += dt.timedelta(days=(7 - day.weekday()) % 7)
    return dt.datetime.combine(day, dt.time(10, 0), tzinfo=ALMATY)


def kezek(db_url: str, *args: str, lang: str = "ru") -> subprocess.CompletedProcess[str]:
    """A ``kezek`` command in a process of its own (the second terminal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEZEK_")}
    return subprocess.run([sys.executable, "-c", "from bot.cli.main import main; main()", "--db", db_url,
                           "--lang", lang, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


async def test_a_seat_published_from_a_second_terminal_runs_on_the_sandbox_clock(db: Database, db_url: str) -> None:
    start = monday_ahead()
    sandbox = await open_sandbox_clock(db, start)  # what `kezek demo --now ...` does
    kz = Kezek(db, sandbox)
    world = await World(kz, FrozenClock(start)).setup()
    [number] = await world.apps(world.row())
    # The API's clock route and the console's !advance move it (three days: Thursday 10:00).
    await move_clock(kz, sandbox, advance=dt.timedelta(days=3))
    thursday = start + dt.timedelta(days=3)

    published = kezek(db_url, "seats", "publish", "--kindergarten", "KG1", "--birth-year", "2023",
                      "--language", "ru", "--count", "1")
    assert published.returncode == 0, published.stderr
    assert number in published.stdout  # its turn came
    async with db.read() as session:
        [offer] = (await session.execute(select(Offer))).scalars().all()
    # Made at the sandbox's moment (not at real time, weeks earlier), so it expires after it.
    assert abs(offer.made_at - thursday) < dt.timedelta(minutes=5)
    assert offer.expires_at > sandbox.now()
    # The sweeps of the running demo and `kezek sweep` leave the offer open: no "offer expired"
    # seconds after "your turn".
    await kz.run_sweeps()
    swept = kezek(db_url, "sweep")
    assert swept.returncode == 0, swept.stderr
    async with db.read() as session:
        assert (await session.execute(select(Offer.status))).scalar_one() == OfferStatus.OPEN
    # ... and it says so, in one line on stderr.
    assert gettext("ru", "A sandbox database: this command runs on its clock, {moment}.",
                        moment="").split(",")[0] in published.stderr


async def test_now_still_wins_and_a_production_database_runs_on_real_time(db: Database, db_url: str) -> None:
    kz = Kezek(db, SystemClock())
    await World(kz, FrozenClock(monday_ahead())).setup()
    plain = kezek(db_url, "stats")
    assert plain.returncode == 0 and plain.stderr == "", plain.stderr  # not a sandbox: nothing said
    assert await stored_offset(db) is None
    sandbox = await open_sandbox_clock(db, monday_ahead())
    told = kezek(db_url, "--now", "2026-09-07T10:00:00+05:00", "stats")
    assert told.returncode == 0 and told.stderr == "", told.stderr  # --now: the moment given
    said = kezek(db_url, "stats", lang="kk")
    moment = format_datetime("kk", sandbox.now(), zone="local")
    assert said.returncode == 0 and moment.split(",")[0] in said.stderr, said.stderr
    assert zone_text("kk", "local") in said.stderr


async def test_a_running_demo_follows_a_move_made_by_another_process(db: Database) -> None:
    start = monday_ahead()
    here = await open_sandbox_clock(db, start)
    there = await open_sandbox_clock(db)  # a second process on the same sandbox: its moment
    assert abs(there.now() - here.now()) < dt.timedelta(seconds=5)
    kz = Kezek(db, there)
    await World(kz, FrozenClock(start)).setup()
    await move_clock(kz, there, advance=dt.timedelta(days=2))
    follower = asyncio.ensure_future(follow_stored_clock(db, here, every=0.05))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while here.now() < start + dt.timedelta(days=2):
            assert loop.time() < deadline, here.now()
            await asyncio.sleep(0.05)
    finally:
        follower.cancel()
    assert abs(here.now() - there.now()) < dt.timedelta(seconds=5)


def test_the_window_hint_says_when_and_how_in_each_language() -> None:
    now = dt.datetime(2026, 9, 11, 21, 0, tzinfo=ALMATY)  # a Friday evening
    opens = dt.datetime(2026, 9, 14, 9, 0, tzinfo=ALMATY)
    refusal = OutsideClaimWindow(opens_at=opens.astimezone(dt.UTC).isoformat())
    ru = window_hint("ru", refusal, now, console=True)
    kk = window_hint("kk", refusal, now, console=True)
    assert "(по времени Астаны)" in ru and "!advance 2d12h" in ru and "14 сентября" in ru
    assert "(Астана уақытымен)" in kk and "!advance 2d12h" in kk and "қыркүйек" in kk
    cli = window_hint("ru", refusal, now)  # the CLI and the Telegram bot of `kezek demo`
    assert "kezek sandbox clock --advance 2d12h" in cli and "14 сентября" in cli


async def test_a_claim_in_the_sandbox_evening_says_how_to_move_the_clock(db: Database, db_url: str) -> None:
    evening = monday_ahead().replace(hour=21)  # the window closed at 20:00
    sandbox = await open_sandbox_clock(db, evening)
    kz = Kezek(db, sandbox)
    world = await World(kz, FrozenClock(evening)).setup()
    [number] = await world.apps(world.row())
    published = await world.publish()
    [seat] = published.seat_ids
    for lang in ("ru", "kk"):
        refused = kezek(db_url, "claim", number, str(seat), "--confirm", "operator", lang=lang)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        opens = format_datetime(lang, evening + dt.timedelta(hours=12), zone="local")
        assert opens in refused.stderr  # when, with the zone
        assert "kezek sandbox clock --advance 12h" in refused.stderr  # how (from 21:00 to 09:00)
    async with db.read() as session:  # nothing changed
        assert (await session.execute(select(Offer.status))).scalar_one() == OfferStatus.OPEN


async def test_the_clock_is_moved_from_a_second_terminal_and_the_claim_then_goes_through(
        db: Database, db_url: str) -> None:
    """`kezek sandbox clock --advance` from another terminal: the refusal's own command moves the
    sandbox to the window's opening, and the same claim is then accepted."""
    evening = monday_ahead().replace(hour=21)
    sandbox = await open_sandbox_clock(db, evening)
    kz = Kezek(db, sandbox)
    world = await World(kz, FrozenClock(evening)).setup()
    [number] = await world.apps(world.row())
    [seat] = (await world.publish()).seat_ids

    shown = kezek(db_url, "sandbox", "clock")
    assert shown.returncode == 0, shown.stderr
    said = gettext("ru", "Sandbox time: {moment}.", moment="\0").split("\0")[0]
    assert said in shown.stdout and format_date("ru", evening) in shown.stdout
    for wrong in ("soon", "400d"):  # not a duration; beyond a move's limit: one line, nothing moves
        refused = kezek(db_url, "sandbox", "clock", "--advance", wrong, lang="kk")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert abs(await stored_offset(db) - (evening - dt.datetime.now(dt.UTC))) < dt.timedelta(minutes=5)

    moved = kezek(db_url, "sandbox", "clock", "--advance", "12h", lang="kk")
    assert moved.returncode == 0, moved.stderr
    said = gettext("kk", "The sandbox clock is now at {moment}.", moment="\0").split("\0")[0]
    assert said in moved.stdout and format_date("kk", evening + dt.timedelta(hours=12)) in moved.stdout
    follower = SystemClock()
    offset = await stored_offset(db)
    assert offset is not None
    assert abs(follower.now() + offset - (evening + dt.timedelta(hours=12))) < dt.timedelta(minutes=5)
    claimed = kezek(db_url, "claim", number, str(seat), "--confirm", "operator")
    assert claimed.returncode == 0, claimed.stderr


async def test_a_database_that_is_not_a_sandbox_keeps_real_time(db: Database, db_url: str) -> None:
    for lang in ("ru", "kk"):
        refused = kezek(db_url, "sandbox", "clock", "--advance", "1d", lang=lang)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        said = gettext(lang, "This database is not a sandbox (kezek demo makes one): it runs on real time.")
        assert said in refused.stderr
    assert await stored_offset(db) is None
