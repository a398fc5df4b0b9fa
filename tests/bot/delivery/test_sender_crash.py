"""A sender process killed (SIGKILL) in the middle of a 2,000-alert fan-out and started again:
every alert reaches its parent, and the only ones that can arrive twice are those the killed
process had taken and not yet written down (the Bot API has no idempotency key: a message
Telegram accepted just before the kill cannot be told from one it never saw). On PostgreSQL two
sender processes share the fan-out (FOR UPDATE SKIP LOCKED) and never take the same alert."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.bench.standin import TOKEN, BotApiStandIn
from services.kezek import Kezek
from services.notifications import EMAIL, TELEGRAM
from storage.models import Delivery
from tests.support.standin import BotProcess, until
from tests.support.world import World, by_status, linked_parents, registrations_sent

ALERTS = 2000
CONCURRENCY = 8


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn(keep_calls=False) as stand_in:
        yield stand_in


async def test_a_sender_killed_mid_fan_out_delivers_everything_once(kz: Kezek, world: World, db_url: str,
                                                                   api: BotApiStandIn, tmp_path: Path) -> None:
    chats = await linked_parents(kz, world, ALERTS)
    await registrations_sent(kz)  # the alerts' copies only
    for _ in range(ALERTS // 500):  # a publication is at most 500 seats
        await world.publish(500, "KG1")
    mail = tmp_path / "mail"
    env = {"KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_MAIL_DIR": str(mail),
           "KEZEK_TELEGRAM_RATE": "0", "KEZEK_TELEGRAM_CHAT_RATE": "0", "KEZEK_SEND_CONCURRENCY": str(CONCURRENCY),
           "KEZEK_OUTBOX_LEASE_SECONDS": "5", "KEZEK_OUTBOX_IDLE_SECONDS": "0.2"}
    several = db_url.startswith("postgresql")

    def sender(name: str) -> BotProcess:
        return BotProcess(tmp_path / f"{name}.log", db_url, env, command=("outbox", "send"))

    procs = [await sender("first").start()]
    if several:
        procs.append(await sender("second").start())
    await until(lambda: len(api.accepted) >= ALERTS // 3, "a third of the alerts sent", 120, *procs)
    assert await procs[0].stop(signal.SIGKILL) == -signal.SIGKILL
    sent_at_kill = len(api.accepted)

    assert sent_at_kill < ALERTS, "the kill came after the fan-out: nothing was proven"

    procs[0] = await sender("restarted").start()

    async def all_sent() -> bool:
        return (await by_status(kz, TELEGRAM)) == {"sent": ALERTS} and (await by_status(kz, EMAIL)) == {"sent": ALERTS}

    await until(all_sent, "every alert and e-mail copy recorded as sent", 180, *procs)
    for proc in procs:
        assert await proc.stop() == 0, proc.log()

    # What the killed process had taken and not written down was taken again after its lease (a
    # live sender's lease is renewed: it is never taken from it): the only alerts that may come
    # twice. (Read at the end: a snapshot right after the kill raced the second sender, which
    # may already have taken some over.)
    async with kz.reading() as ctx:
        taken_twice = set((await ctx.session.execute(select(Delivery.target).where(
            Delivery.channel == TELEGRAM, Delivery.attempts > 1))).scalars())
    received = Counter(chat for chat, _ in api.accepted)
    assert set(received) == set(chats)  # every parent got the alert
    twice = {str(chat) for chat, n in received.items() if n > 1}
    assert twice <= taken_twice, "an alert came twice that no killed sender had in hand"
    assert len(twice) <= CONCURRENCY  # at most what the killed process had in flight
    # The e-mail copies: one file per delivery, each written once (the file name is its key).
    assert len(list(mail.glob("*.eml"))) == ALERTS
    for proc in procs:
        assert "Traceback" not in proc.log(), proc.log()
