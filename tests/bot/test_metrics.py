"""Metrics for operators (bot/metrics.py): what the Prometheus endpoints of the registry API and of
the webhook server show after updates, deliveries and sweeps, and when the health checks fail
(the database does not answer; deliveries overdue and no sender round to send them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

import bot.metrics as metrics_module
from bot.delivery.sender import drain_once, outbox_loop
from bot.jobs import snapshot_job, sweep_job
from bot.metrics import Metrics, assess
from bot.telegram.app import build_dispatcher
from bot.telegram.webhook import build_webhook_app
from services.clock import FrozenClock
from services.email import EmailContent
from services.health import ROUTER, Due
from services.kezek import Kezek
from storage.db import Database
from tests.support.api import AUTH, api_client, make_settings
from tests.support.delivery import unlimited
from tests.support.telegram import CHAT_ID, Harness, MockedBot
from tests.support.world import World, linked_parents

SECRET = "s3cret-Token_1"


@pytest.fixture(autouse=True)
def meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    """A fresh set of metrics for each test (the process's is left alone)."""
    fresh = Metrics()
    monkeypatch.setattr(metrics_module, "METRICS", fresh)
    yield fresh


async def scrape(client: TestClient, path: str = "/api/v1/metrics"
                 ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of one scrape, by (name, sorted labels); the API's needs the token."""
    resp = await client.get(path, headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Mailbox:
    """An e-mail port that takes every message."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, to: str, content: EmailContent, *, message_key: str) -> None:
        self.sent.append(to)


# --- updates ---------------------------------------------------------------------------------------

async def test_updates_are_counted_by_type_and_outcome(tg: Harness, kz: Kezek,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    await tg.send(text="/start")
    await tg.send(text="/help")
    await tg.press("no-such-button")
    # The database fails under a handler: the error boundary apologises, the update counts as an error.
    async def broken(*_args: Any, **_kw: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(kz, "chat_seen", broken)
    calls = await tg.send(text="/status")
    assert [c for c in calls if isinstance(c, SendMessage)]  # the apology

    async with api_client(kz) as client:
        samples = await scrape(client)
    assert value(samples, "kezek_updates_total", type="message", outcome="ok") == 2
    assert value(samples, "kezek_updates_total", type="callback_query", outcome="ok") == 1
    assert value(samples, "kezek_updates_total", type="message", outcome="error") == 1
    assert value(samples, "kezek_update_duration_seconds_count", type="message") == 3
    assert value(samples, "kezek_update_duration_seconds_count", type="callback_query") == 1


# --- the outbox ------------------------------------------------------------------------------------

async def test_the_backlog_gauges_show_what_is_due_and_how_late(kz: Kezek, world: World,
                                                                clock: FrozenClock) -> None:
    await linked_parents(kz, world, 3)
    async with api_client(kz) as client:
        idle = await scrape(client)
        assert value(idle, "kezek_outbox_due", channel="telegram") == 0
        assert value(idle, "kezek_database_up") == 1

        await world.publish(3, "KG1")  # three "your turn" notices, not routed yet
        samples = await scrape(client)
        assert value(samples, "kezek_outbox_due", channel=ROUTER) >= 3
        assert value(samples, "kezek_outbox_due", channel="telegram") == 0

        await kz.route_notices()
        clock.advance(seconds=90)
        samples = await scrape(client)
        assert value(samples, "kezek_outbox_due", channel=ROUTER) == 0
        assert value(samples, "kezek_outbox_due", channel="telegram") == 3
        assert value(samples, "kezek_outbox_due", channel="email") >= 3
        assert value(samples, "kezek_outbox_oldest_due_seconds", channel="telegram") == 90

        await drain_once(kz, MockedBot(), Mailbox(), unlimited())
        samples = await scrape(client)
    assert value(samples, "kezek_outbox_due", channel="telegram") == 0
    assert value(samples, "kezek_outbox_oldest_due_seconds", channel="telegram") == 0
    assert value(samples, "kezek_deliveries_total", channel="telegram", result="sent") == 3
    assert value(samples, "kezek_deliveries_total", channel="email", result="sent") >= 3
    assert value(samples, "kezek_sender_rounds_total", outcome="ok") == 1
    assert value(samples, "kezek_sender_last_success_timestamp_seconds") > 0


async def test_failed_and_retried_sends_are_counted(kz: Kezek, world: World) -> None:
    blocked, flaky, fine = await linked_parents(kz, world, 3)
    await world.publish(3, "KG1")

    refusing = MockedBot()
    refusing.session.add_result_for(SendMessage, chat_id=blocked, error_code=403,
                                    description="Forbidden: bot was blocked by the user")
    refusing.session.add_result_for(SendMessage, chat_id=flaky, error_code=500, description="Internal Server Error")
    await drain_once(kz, refusing, None, unlimited())
    async with api_client(kz) as client:
        samples = await scrape(client)
    assert value(samples, "kezek_deliveries_total", channel="telegram", result="sent") == 1
    assert value(samples, "kezek_deliveries_total", channel="telegram", result="failed") == 1
    assert value(samples, "kezek_deliveries_total", channel="telegram", result="retried") == 1
    assert fine
    # The one refused for a server error waits to retry: the gauge shows it, due or not.
    assert value(samples, "kezek_outbox_retrying", channel="telegram") == 1
    assert value(samples, "kezek_outbox_due", channel="telegram") == 0


async def test_an_smtp_outage_shows_as_retrying_copies_not_as_due_ones(kz: Kezek, world: World) -> None:
    """The SMTP server away: every copy is given back (no try used) and waits; between the retries
    nothing is due, and kezek_outbox_retrying is what shows the outage."""
    from services.notifications import RetryLater

    await linked_parents(kz, world, 3)
    await world.publish(3, "KG1")

    class Away:
        async def send(self, to: str, content: Any, *, message_key: str) -> None:
            raise RetryLater(30, "smtp server unreachable: SMTPConnectError", flood=True)

    await drain_once(kz, None, Away(), unlimited())
    async with api_client(kz) as client:
        samples = await scrape(client)
    assert value(samples, "kezek_outbox_due", channel="email") == 0
    assert value(samples, "kezek_outbox_retrying", channel="email") >= 3
    report = await kz.outbox_report()
    assert report["waiting_reasons"] == {"email: smtp server unreachable: SMTPConnectError":
                                         report["deliveries"]["email"]["pending"]}


# --- scheduled jobs --------------------------------------------------------------------------------

async def test_sweeps_and_their_failures_are_counted(kz: Kezek, world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert await sweep_job(kz) is not None
    assert await snapshot_job(kz) is not None

    async def broken() -> Any:
        raise RuntimeError("locked")

    monkeypatch.setattr(kz, "run_sweeps", broken)
    assert await sweep_job(kz) is None
    async with api_client(kz) as client:
        samples = await scrape(client)
    assert value(samples, "kezek_jobs_total", job="sweep", outcome="ok") == 1
    assert value(samples, "kezek_jobs_total", job="sweep", outcome="error") == 1
    assert value(samples, "kezek_jobs_total", job="snapshot", outcome="ok") == 1


# --- health ----------------------------------------------------------------------------------------

async def overdue(kz: Kezek, world: World, clock: FrozenClock, count: int = 2, **late: float) -> list[int]:
    """``count`` linked parents whose "your turn" notices are routed and due for ``late``."""
    chats = await linked_parents(kz, world, count)
    await world.publish(count, "KG1")
    await kz.route_notices()
    clock.advance(**late)
    return chats


async def test_health_fails_while_deliveries_are_long_overdue_and_recovers_after_a_round(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    chats = await overdue(kz, world, clock, hours=1)
    async with api_client(kz) as client:
        resp = await client.get("/api/v1/health")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "unavailable" and body["database"] == "ok" and body["senders"] == "stuck"
        assert any(p.startswith("telegram:") for p in body["problems"])
        assert any(p.startswith("email:") for p in body["problems"])

        bot = MockedBot()
        mailbox = Mailbox()
        await drain_once(kz, bot, mailbox, unlimited())
        assert sorted(int(c.chat_id) for c in bot.session.requests if isinstance(c, SendMessage)) == chats

        resp = await client.get("/api/v1/health")
        assert resp.status == 200
        assert await resp.json() == {"status": "ok", "database": "ok"}


async def test_a_sender_of_this_process_that_makes_no_round_is_stuck_after_five_minutes(
        kz: Kezek, world: World, clock: FrozenClock, meter: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    meter.senders_started(["telegram", "email"])
    await overdue(kz, world, clock, minutes=2)
    async with api_client(kz) as client:
        assert (await client.get("/api/v1/health")).status == 200  # due for 2 minutes: fine
        clock.advance(minutes=8)
        resp = await client.get("/api/v1/health")
        assert resp.status == 503
        assert "no sender round has finished" in " ".join((await resp.json())["problems"])

        # A round that fails (the database refuses the lease, say) does not count as one.
        async def refused(*_args: Any, **_kw: Any) -> Any:
            raise RuntimeError("database is locked")

        with monkeypatch.context() as m:
            m.setattr(kz, "deliver_due", refused)
            with pytest.raises(RuntimeError):
                await drain_once(kz, MockedBot(), Mailbox(), unlimited())
        assert (await client.get("/api/v1/health")).status == 503

        await drain_once(kz, MockedBot(), Mailbox(), unlimited())
        assert (await client.get("/api/v1/health")).status == 200
        samples = await scrape(client)
    assert value(samples, "kezek_sender_rounds_total", outcome="error") == 1
    assert value(samples, "kezek_sender_rounds_total", outcome="ok") == 1


def test_the_health_rules() -> None:
    """``assess`` on figures: a busy sender that keeps finishing rounds is healthy however long its
    backlog; an idle process without senders tolerates a backlog up to 30 minutes."""
    late = {"telegram": Due(500, 900.0), "email": Due(0, 0.0), ROUTER: Due(0, 0.0)}
    sending = Metrics()
    sending.sender_round(["telegram"], ok=True)
    assert sending.last_round is not None
    assert assess(late, sending, now=sending.last_round + 10).ok
    stalled = assess(late, sending, now=sending.last_round + 400)
    assert not stalled.ok and stalled.database and "400 s ago" in stalled.problems[0]

    elsewhere = Metrics()  # no sender in this process
    assert assess(late, elsewhere).ok
    assert not assess({**late, "telegram": Due(1, 2000.0)}, elsewhere).ok
    # Unrouted notices: judged like a channel, by the senders of this process when there are any.
    unrouted = {**late, "telegram": Due(), ROUTER: Due(3, 400.0)}
    assert assess(unrouted, elsewhere).ok
    started = Metrics()
    started.senders_started(["email"])  # a loop that never finished a round
    assert not assess(unrouted, started).ok
    assert not assess(None, elsewhere).database


async def test_health_and_metrics_fail_soft_when_the_database_is_gone(kz: Kezek, tmp_path: Path) -> None:
    broken = Kezek(Database(f"sqlite:///{tmp_path}/no/such/dir/kezek.sqlite3"), kz.clock)
    try:
        async with api_client(broken) as client:
            resp = await client.get("/api/v1/health")
            assert resp.status == 503
            assert await resp.json() == {"status": "unavailable", "database": "unavailable"}
            samples = await scrape(client)
        assert value(samples, "kezek_database_up") == 0
    finally:
        await broken.db.dispose()


async def test_health_is_public_but_the_metrics_and_the_rest_are_not(kz: Kezek) -> None:
    async with api_client(kz) as client:
        assert (await client.get("/api/v1/metrics")).status == 401
        assert (await client.get("/api/v1/health")).status == 200
        assert (await client.get("/api/v1/stats")).status == 401


async def test_outbox_loop_registers_its_channels(kz: Kezek, meter: Metrics) -> None:
    import asyncio

    task = asyncio.ensure_future(outbox_loop(kz, MockedBot(), None, idle=0.01))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while meter.last_round is None:  # the first round: milliseconds, but the machine may be busy
            assert asyncio.get_running_loop().time() < deadline, "no sender round within 30 s"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert meter.sender_channels == {"telegram"}
    assert meter.last_round is not None  # an idle round is a successful one


# --- the webhook server ----------------------------------------------------------------------------

async def test_the_webhook_server_serves_metrics_and_a_health_check(kz: Kezek, world: World,
                                                                    clock: FrozenClock, tmp_path: Path) -> None:
    harness = Harness(build_dispatcher(kz))
    app = build_webhook_app(harness.dp, harness.bot, make_settings(webhook_secret=SECRET))
    try:
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/healthz")
            assert resp.status == 200 and await resp.text() == "ok"

            update = {"update_id": 1, "message": {
                "message_id": 1, "date": 1788760800, "text": "/start",
                "chat": {"id": CHAT_ID, "type": "private"},
                "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Айгерим", "language_code": "kk"}}}
            resp = await client.post("/telegram/webhook", json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert resp.status == 200
            samples = await scrape(client, "/metrics")
            assert value(samples, "kezek_updates_total", type="message", outcome="ok") == 1
            assert value(samples, "kezek_outbox_due", channel="telegram") == 0

            await overdue(kz, world, clock, hours=1)
            resp = await client.get("/healthz")
            assert resp.status == 503
            assert "senders are stuck" in await resp.text()
            samples = await scrape(client, "/metrics")
            assert value(samples, "kezek_outbox_due", channel="telegram") == 2
    finally:
        await harness.bot.session.close()

    broken = Kezek(Database(f"sqlite:///{tmp_path}/no/such/dir/kezek.sqlite3"), kz.clock)
    harness = Harness(build_dispatcher(broken))
    app = build_webhook_app(harness.dp, harness.bot, make_settings(webhook_secret=SECRET))
    try:
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/healthz")
            assert resp.status == 503
            assert "database" in await resp.text()
    finally:
        await harness.bot.session.close()
        await broken.db.dispose()
