"""``kezek run`` SIGKILLed in the middle of a small fan-out (20 "your turn" alerts for 20 linked
parents, Telegram's default pacing of 30 a second and 1 a second per chat, the default lease) and
started again.

What a parent would notice, and what is asserted:

* **repeats**: an alert comes twice only if the killed process had it in flight (sent, its result
  not yet written down): never one whose ``sent`` was already committed, at most the send
  concurrency (8), and not every alert that was already out;
* **the late tail**: every parent has the alert within 30 s of the restarted process coming up
  (the deliveries the dead process held are taken over once its short lease, no longer renewed,
  runs out), not after the old 120-second lease. A deadline on a condition, not a speed assert.

The kill comes from the Bot API stand-in itself, at the moment it takes the 12th message (more
than the 8 sends that can be in flight), so it lands mid fan-out however busy the machine is.
The figures are printed with ``-s``."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.kezek import Kezek
from services.notifications import EMAIL, TELEGRAM
from storage.models import Delivery
from tests.support.standin import START_UP, TOKEN, BotApiStandIn, BotProcess, until
from tests.support.world import World, by_status, linked_parents, registrations_sent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ALERTS = 20
CONCURRENCY = 8  # KEZEK_SEND_CONCURRENCY's default: the sends one process can have in flight
KILL_AT = 12  # the stand-in kills the sender when it takes this message
LATENCY = 0.05  # seconds the stand-in takes to answer a message (Telegram's round trip, roughly)
DEADLINE = 30.0  # every parent has the alert this long after the restarted process is up


class KillingStandIn(BotApiStandIn):
    """Answers each message after ``LATENCY`` and SIGKILLs ``victim`` when it takes message
    number ``kill_at``; remembers when it first took each chat's message."""

    def __init__(self) -> None:
        super().__init__()
        self.victim: BotProcess | None = None
        self.kill_at = KILL_AT
        self.killed_at: float | None = None
        self.first_at_chat: dict[int, float] = {}

    async def _refusal(self, method: str, params: dict[str, Any]) -> Any:
        refused = await super()._refusal(method, params)
        if refused is None and method == "sendmessage":
            self.first_at_chat.setdefault(int(params["chat_id"]), time.monotonic())
            if self.victim is not None and len(self.accepted) >= self.kill_at:
                assert self.victim.proc is not None
                self.victim.proc.kill()  # SIGKILL: no shutdown, nothing written after this
                self.killed_at = time.monotonic()
                self.victim = None
        return refused

    async def _answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "sendmessage":
            await asyncio.sleep(LATENCY)
        return await super()._answer(method, params)


@pytest.fixture
async def api() -> AsyncIterator[KillingStandIn]:
    async with KillingStandIn() as stand_in:
        yield stand_in


async def recorded_sent(kz: Kezek) -> set[int]:
    async with kz.reading(with_calendar=False) as ctx:
        return {int(t) for t in (await ctx.session.execute(select(Delivery.target).where(
            Delivery.channel == TELEGRAM, Delivery.status == "sent"))).scalars()}


async def test_a_killed_sender_repeats_only_its_sends_in_flight_and_nobody_waits_out_its_lease(
        kz: Kezek, world: World, db_url: str, api: KillingStandIn, tmp_path: Path) -> None:
    chats = await linked_parents(kz, world, ALERTS)
    await registrations_sent(kz)  # the alerts' copies only
    await world.publish(ALERTS, "KG1")
    # The defaults a deployment runs with: Telegram's pacing, 8 sends in flight, the lease.
    env = {"KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_MAIL_DIR": str(tmp_path / "mail")}

    def kezek_run(name: str) -> BotProcess:
        return BotProcess(tmp_path / f"{name}.log", db_url, env, command=("run", "--no-api", "--no-scheduler"))

    first = kezek_run("killed")
    api.victim = first
    await first.start()
    await until(lambda: api.killed_at is not None, "the kill mid fan-out", START_UP, first)
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    accepted_at_kill = Counter(chat for chat, _ in api.accepted)
    sent_at_kill = await recorded_sent(kz)  # what the killed process had written down
    assert len(accepted_at_kill) < ALERTS, "the kill came after the fan-out: nothing was proven"

    calls = len(api.calls)
    restarted = await kezek_run("restarted").start()
    # Up: the restarted process talks to the Bot API (start-up: imports, migrations).
    await until(lambda: len(api.calls) > calls, "the restarted process is up", START_UP, restarted)
    up_at = time.monotonic()
    try:
        waited = await until(lambda: set(api.first_at_chat) == set(chats),
                             "every parent has the alert", DEADLINE, restarted)

        async def all_recorded() -> bool:
            return (await by_status(kz, TELEGRAM)) == {"sent": ALERTS} and \
                (await by_status(kz, EMAIL)) == {"sent": ALERTS}

        await until(all_recorded, "every alert and copy recorded as sent", DEADLINE, restarted)
    finally:
        code = await restarted.stop()
    assert code == 0, restarted.log()

    received = Counter(chat for chat, _ in api.accepted)
    twice = {chat for chat, n in received.items() if n > 1}
    assert api.killed_at is not None
    late = [api.first_at_chat[c] - api.killed_at for c in chats if api.first_at_chat[c] > api.killed_at]
    figures = {
        "backend": db_url.split(":")[0], "out_at_kill": len(accepted_at_kill),
        "recorded_sent_at_kill": len(sent_at_kill),
        "in_flight_at_kill (out, not recorded)": len(set(accepted_at_kill) - sent_at_kill),
        "repeats": len(twice), "late_tail_alerts": len(late),
        "last_alert_after_kill_s": round(max(late, default=0.0), 1),
        "restart_up_after_kill_s": round(up_at - api.killed_at, 1),
        "all_had_it_after_up_s": round(waited, 1),
    }
    print("\nsender SIGKILLed mid fan-out:", figures)

    assert set(received) == set(chats)  # every parent got the alert
    assert not twice & sent_at_kill, "an alert came twice whose sending had been written down"
    assert len(twice) <= CONCURRENCY  # at most what the killed process had in flight ...
    assert len(twice) < len(accepted_at_kill)  # ... not every alert that was already out
    for proc in (first, restarted):
        assert "Traceback" not in proc.log(1_000_000), proc.log()

