"""PostgreSQL restarted and stopped for seconds under load (a restart during a fan-out), on a
private cluster of its own (``tests/support/pgcluster.py``: initdb on a free loopback port,
run as an unprivileged user when the tests run as root), so the shared server is never touched.
Skipped, with the reason, where no cluster can be started (no server binaries, no such user).

**The senders** (``test_the_sender_rides_out_a_database_restart_and_an_outage``): 1,500 "your turn"
alerts (Telegram, paced at 100 a second, plus the official e-mail copy of each to the mail folder),
``kezek outbox send`` as its own process, and in the middle of the fan-out ``pg_ctl restart -m
fast`` (every session terminated, the server back in 0.3-0.5 s), then ``pg_ctl stop -m fast`` for
6 seconds and ``start``. Outcome, three runs on this machine (2 shared cores):

* the sender process lives through both and exits 0 on SIGTERM at the end, no traceback in its
  log. A fault fails the round in flight (a line ``outbox round failed: InternalError`` or
  ``DBAPIError``; 1-2 such lines a run), and while the server is down every round fails at its
  first read: a line ``outbox round failed: ConnectionRefusedError`` a round, every
  ``KEZEK_OUTBOX_IDLE_SECONDS`` (0.2 s here): 30-31 lines in 6 s with one sender loop, 60 with
  a loop per channel; it picks up as soon as the server answers;
* every alert reaches its chat (1,500 chats) and all 1,500 e-mail copies are in the folder; all
  3,000 deliveries end ``sent``; the fan-out took 25-47 s instead of ~15 s + 6 s (the leases of
  the failed rounds run out first: 5 s here);
* duplicates: the connection can die after Telegram took a message and before its ``sent`` was
  committed. Nothing can tell those apart from messages Telegram never saw (the Bot API has no
  idempotency key), so after the lease they are sent again. ``deliver_due`` holds a send's slot
  until its result is written, so one failed round leaves at most ``concurrency`` sends of a
  channel unrecorded: at most 8 Telegram duplicates and 4 e-mail copies written again per fault,
  and only among deliveries that were claimed twice (``attempts >= 2``). Measured: 16 Telegram
  duplicates (1,516 messages) in every run, i.e. the bound is reached (by the time the first
  write fails, every slot has sent), and 0-8 e-mail files rewritten. (A commit that reached the server but
  whose answer was lost is the other way round: recorded, never resent.) E-mail copies are written
  as ``<delivery key>.eml`` and a resent copy replaces its own file, so the folder holds one file
  per key whatever happens; the test watches the files' inodes to count the rewrites. Through SMTP
  such a copy would be a second e-mail with the same Message-ID;
* ``bot.metrics.check_health`` reports the database down while it is stopped.

**The webhook** (``test_a_webhook_instance_through_a_database_restart``): one ``kezek run``
instance in webhook mode (no senders, no scheduler), 50 linked parents taking turns to send
``/status`` (POSTed like Telegram, one update every 0.1 s; each chat stays under the per-chat
throttle, which is kept on) through the same restart and a 6-second stop. Outcome (two runs):
every update got HTTP 200, so Telegram does NOT redeliver: an update that hits the outage is
answered by the error boundary with "Something went wrong. Please try again later." in the
update's ``language_code`` (the chat's chosen language cannot be read then), never a stack trace;
48-58 such answers during the stop, 1-2 around the restart, every other update served (13-28
after the start, the first one within 0.5 s: ``pool_pre_ping`` replaces the dead connections). ``/healthz``
answered 503 "unavailable: the database does not answer" at each of its probes during the stop (one
every 0.5 s: 12, or more while fewer than 10 updates were answered) and 200 after. The log has
one ``handler failed: <kind> in update N (message)`` record per failed update, each with its ~20
frame locations (no source, no values)."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.bench.outbox import FIRST_CHAT, chat_language, seed_fan_out, seed_linked_parents
from bot.bench.queue import BENCH_NOW
from bot.metrics import Metrics, check_health
from locales import gettext
from services.clock import FrozenClock
from services.kezek import Kezek
from services.notifications import EMAIL, TELEGRAM
from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Delivery
from tests.support.pgcluster import PgCluster, free_port, unavailable
from tests.support.standin import TOKEN, BotApiStandIn, BotProcess, until
from tests.support.world import by_status, registrations_sent

ALERTS = 1500
CONCURRENCY = 8
EMAIL_CONCURRENCY = 4  # bot.delivery.sender.SendPolicy's default
RATE = 100  # Telegram sends a second: the fan-out lasts ~15 s, long enough to hit it twice
OUTAGE = 6.0  # seconds the server stays stopped
SECRET = "fault-Secret_1"
APOLOGY = "Something went wrong. Please try again later."

pytestmark = pytest.mark.skipif(bool(unavailable()), reason=f"no private PostgreSQL cluster: {unavailable()}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    try:
        pg = asyncio.run(PgCluster.create())
    except RuntimeError as exc:
        pytest.skip(f"a private PostgreSQL cluster could not be started: {exc}")
    yield pg
    asyncio.run(pg.destroy())


@pytest.fixture
async def db_url(cluster: PgCluster) -> str:
    if not await cluster.is_up():  # a failed test may have left it stopped
        await cluster.start()
    url = await cluster.create_database(f"kezek_fault_{uuid.uuid4().hex[:8]}")
    await upgrade_async(url)
    return url


@pytest.fixture
async def kz(db_url: str) -> AsyncIterator[Kezek]:
    db = Database(db_url)
    yield Kezek(db, FrozenClock(BENCH_NOW))
    await db.dispose()


class FolderWatch:
    """Watches the mail folder (every 50 ms): which inodes each ``.eml`` name has had. A copy
    written again replaces its file (``tmp`` + rename): a new inode under the same name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.inodes: dict[str, set[int]] = {}
        self.task: asyncio.Task[None] | None = None

    def scan(self) -> None:
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.endswith(".eml"):
                try:
                    self.inodes.setdefault(entry.name, set()).add(entry.inode())
                except FileNotFoundError:
                    continue

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.scan)
            await asyncio.sleep(0.05)

    def __enter__(self) -> FolderWatch:
        self.task = asyncio.ensure_future(self.run())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        self.scan()

    def rewritten(self) -> set[str]:
        return {name for name, inodes in self.inodes.items() if len(inodes) > 1}


def round_failures(log: str) -> Counter[str]:
    return Counter(re.findall(r"outbox round failed: (\w+)", log))


async def test_the_sender_rides_out_a_database_restart_and_an_outage(
        cluster: PgCluster, db_url: str, kz: Kezek, tmp_path: Path) -> None:
    seeded = time.perf_counter()
    await seed_fan_out(kz, ALERTS)
    await registrations_sent(kz)  # the alerts' copies only
    seeded = time.perf_counter() - seeded
    chats = {FIRST_CHAT + i for i in range(ALERTS)}
    mail = tmp_path / "mail"
    env = {"KEZEK_BOT_TOKEN": TOKEN, "KEZEK_MAIL_DIR": str(mail), "KEZEK_TELEGRAM_RATE": str(RATE),
           "KEZEK_TELEGRAM_CHAT_RATE": "0", "KEZEK_SEND_CONCURRENCY": str(CONCURRENCY),
           "KEZEK_OUTBOX_LEASE_SECONDS": "5", "KEZEK_OUTBOX_IDLE_SECONDS": "0.2"}
    figures: dict[str, Any] = {"seeded_seconds": round(seeded, 1)}

    async with BotApiStandIn(keep_calls=False) as api:
        env["KEZEK_BOT_API_URL"] = api.base_url
        sender = await BotProcess(tmp_path / "sender.log", db_url, env, command=("outbox", "send")).start()
        probe = Kezek(Database(db_url), FrozenClock(BENCH_NOW))  # the health check's own pool
        try:
            with FolderWatch(mail) as watch:
                started = time.perf_counter()
                await until(lambda: len(api.accepted) >= ALERTS // 4, "a quarter sent", 120, sender)
                figures["sent_before_restart"] = len(api.accepted)
                t0 = time.perf_counter()
                await cluster.restart("fast")
                figures["restart_seconds"] = round(time.perf_counter() - t0, 2)
                await until(lambda: len(api.accepted) >= ALERTS // 2, "half sent", 120, sender)
                figures["sent_before_stop"] = len(api.accepted)
                await cluster.stop("fast")
                stopped_at, sent_at_stop = time.perf_counter(), len(api.accepted)
                health = await check_health(probe, Metrics())
                assert not health.database, "the health check did not see the database down"
                await asyncio.sleep(OUTAGE)
                assert sender.alive() is None, sender.alive()
                figures["sent_while_down"] = len(api.accepted) - sent_at_stop  # in flight at the stop
                await cluster.start()
                figures["outage_seconds"] = round(time.perf_counter() - stopped_at, 1)
                assert (await check_health(probe, Metrics())).database

                async def all_sent() -> bool:
                    return (await by_status(kz, TELEGRAM)) == {"sent": ALERTS} and \
                        (await by_status(kz, EMAIL)) == {"sent": ALERTS}

                figures["seconds_to_finish_after_outage"] = round(
                    await until(all_sent, "every alert and copy recorded as sent", 180, sender), 1)
                figures["fan_out_seconds"] = round(time.perf_counter() - started, 1)
                await asyncio.sleep(0.3)  # the folder watch's last look
        finally:
            await probe.db.dispose()
            code = await sender.stop()
        log = sender.log(1_000_000)
        assert code == 0, log[-4000:]
        assert "Traceback" not in log, log[-6000:]

        received = Counter(chat for chat, _ in api.accepted)
        async with kz.reading(with_calendar=False) as ctx:
            claimed_twice = {
                channel: set((await ctx.session.execute(select(Delivery.target if channel == TELEGRAM else Delivery.id)
                                                        .where(Delivery.channel == channel, Delivery.attempts > 1)))
                             .scalars())
                for channel in (TELEGRAM, EMAIL)}

    twice = {chat for chat, n in received.items() if n > 1}
    rewritten = watch.rewritten()
    figures |= {"telegram_received": len(api.accepted), "telegram_twice": len(twice),
                "telegram_claimed_twice": len(claimed_twice[TELEGRAM]), "emails": len(list(mail.glob("*.eml"))),
                "email_files_rewritten": len(rewritten), "email_claimed_twice": len(claimed_twice[EMAIL]),
                "round_failures": dict(round_failures(log))}
    print("\nsender through a restart and a 6 s outage:", figures)

    assert set(received) == chats  # every parent got the alert
    assert {str(c) for c in twice} <= claimed_twice[TELEGRAM], "a duplicate that no failed round had in hand"
    assert len(twice) <= 2 * CONCURRENCY  # two faults, at most one failed round in flight each
    emails = sorted(mail.glob("*.eml"))
    assert len(emails) == ALERTS  # one copy per delivery key
    assert not list(mail.glob("*.tmp"))
    assert {f"kezek-{i}.eml" for i in claimed_twice[EMAIL]} >= rewritten
    assert len(rewritten) <= 2 * EMAIL_CONCURRENCY
    assert sum(round_failures(log).values()) >= 2  # each fault was noticed, and logged as one line a round


async def test_a_webhook_instance_through_a_database_restart(
        cluster: PgCluster, db_url: str, kz: Kezek, tmp_path: Path) -> None:
    parents = 50  # each posts every ~5 s: under the per-chat throttle (20 a minute), kept on
    await seed_linked_parents(kz, parents)
    await registrations_sent(kz)  # the alerts' copies only
    chats = [(FIRST_CHAT + i, chat_language(i), f"B{i:07d}") for i in range(parents)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    phase = "before"
    healthz: Counter[tuple[str, int]] = Counter()

    async with BotApiStandIn() as api, aiohttp.ClientSession() as http:
        bot = BotProcess(tmp_path / "bot.log", db_url, {
            "KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_WEBHOOK_URL": "https://kezek.invalid",
            "KEZEK_WEBHOOK_SECRET": SECRET, "KEZEK_WEBHOOK_HOST": "127.0.0.1", "KEZEK_WEBHOOK_PORT": str(port),
            "KEZEK_MAIL_DIR": str(tmp_path / "mail")}, command=("run", "--no-api", "--no-scheduler", "--no-senders"))
        await bot.start()

        async def healthy() -> bool:
            try:
                async with http.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    return resp.status == 200
            except (aiohttp.ClientError, OSError):
                return False

        await until(healthy, "the webhook instance answers /healthz", 60, bot)

        async def parents_talk(stop: asyncio.Event) -> None:
            n = 0
            while not stop.is_set():
                chat, lang, number = chats[n % parents]
                n += 1
                mark = len(api.calls)
                update = api.send_text(chat, "/status", language_code=lang, deliver=False)
                posted_in, started = phase, time.perf_counter()  # the phase when the update was posted
                try:
                    async with http.post(f"{base}/telegram/webhook", json=update,
                                         headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                                         timeout=aiohttp.ClientTimeout(total=30)) as resp:
                        status, body = resp.status, await resp.text()
                except (aiohttp.ClientError, OSError) as exc:
                    status, body = 0, type(exc).__name__
                replies = [c.text or "" for c in api.calls[mark:]
                           if c.method.lower() == "sendmessage" and c.chat_id == chat]
                results.append({"phase": posted_in, "status": status, "body": body, "lang": lang, "number": number,
                                "replies": replies, "seconds": time.perf_counter() - started})
                await asyncio.sleep(0.1)

        async def probe_health() -> None:
            async with http.get(f"{base}/healthz") as resp:
                healthz[(phase, resp.status)] += 1
                if phase == "down":
                    assert await resp.text() == "unavailable: the database does not answer"

        def answered(in_phase: str) -> int:
            return sum(1 for r in results if r["phase"] == in_phase and r["status"] == 200)

        stop = asyncio.Event()
        talk = asyncio.ensure_future(parents_talk(stop))
        try:
            # Each phase lasts until enough updates went through it (a deadline, not a sleep: on a
            # busy machine a fixed pause may see none).
            await until(lambda: answered("before") >= 10, "updates served before the restart", 60, bot)
            phase = "restart"
            await cluster.restart("fast")
            await asyncio.sleep(2)
            phase = "stopping"
            await cluster.stop("fast")
            phase = "down"
            down_since, probes = time.perf_counter(), 0
            while time.perf_counter() - down_since < OUTAGE or answered("down") < 10:
                await probe_health()
                probes += 1
                assert time.perf_counter() - down_since < 60, f"{answered('down')} updates answered in the outage"
                await asyncio.sleep(0.5)
            phase = "starting"
            await cluster.start()
            phase = "after"
            await until(lambda: answered("after") >= 10, "updates answered after the start", 60, bot)
            await probe_health()
        finally:
            stop.set()
            await talk
            code = await bot.stop()
    log = bot.log(1_000_000)
    assert code == 0, log[-4000:]

    def kind(r: dict[str, Any]) -> str:
        if r["status"] != 200:
            return f"http {r['status']}"
        if not r["replies"]:
            return "no reply"
        if all(text == gettext(r["lang"], APOLOGY) for text in r["replies"]):
            return "apology"
        if any(r["number"] in text for text in r["replies"]):
            return "served"
        return "other: " + " | ".join(r["replies"])[:200]

    outcome = Counter((r["phase"], kind(r)) for r in results)
    slowest = {p: round(max((r["seconds"] for r in results if r["phase"] == p), default=0), 3)
               for p in ("before", "restart", "stopping", "down", "starting", "after")}
    print("\nwebhook /status through a restart and a 6 s outage:", dict(outcome), "slowest:", slowest,
          "healthz:", dict(healthz), "handler failures logged:", log.count("handler failed:"))

    for r in results:
        for text in r["replies"]:
            assert "Traceback" not in text and "Error" not in text and "asyncpg" not in text, text
    assert "Traceback" not in log, log[-6000:]
    kinds = {k for _, k in outcome}
    assert kinds <= {"served", "apology"}, outcome  # every update answered 200, politely
    assert outcome[("down", "apology")] >= 10 and outcome[("down", "served")] == 0
    assert {k for (p, k) in outcome if p == "before"} == {"served"}
    after = [r for r in results if r["phase"] == "after"]
    assert len(after) >= 10 and all(kind(r) == "served" for r in after)  # serves again at once
    assert healthz[("down", 503)] == probes >= int(OUTAGE / 0.5) and healthz[("after", 200)] == 1
    assert {r["lang"] for r in results if kind(r) == "apology"} == {"ru", "kk"}  # in the parent's language
