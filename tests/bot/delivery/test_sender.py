"""The Telegram sender against a Bot API stand-in on loopback that refuses like Telegram does:
429 with ``retry_after`` (everyone pauses, the try does not count), 5xx and timeouts (retried with
backoff), 403 (the chat is marked blocked, its e-mail copies go on, and it gets its alerts again
once it writes to the bot); the pacing that keeps a fan-out inside 30 messages a second with no
429 at all; and the operator's outbox report."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import select

from bot.bench.standin import TOKEN, BotApiStandIn
from bot.delivery.sender import SendPolicy, drain_once
from services.clock import FrozenClock
from services.kezek import Kezek
from services.notices import NoticeKind
from services.notifications import EMAIL, LEASE, TELEGRAM, Notice
from services.pacing import Pacer, _Window
from storage.models import Chat, Delivery, OutboxMessage
from tests.support.delivery import Port, unlimited
from tests.support.world import World, linked_parents, registrations_sent


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn(timeout_delay=3.0) as stand_in:
        yield stand_in


@pytest.fixture
async def bot(api: BotApiStandIn) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url), timeout=1)
    bot = Bot(TOKEN, session=session)
    yield bot
    await session.close()


async def statuses(kz: Kezek, channel: str = TELEGRAM) -> dict[str, tuple[str, int, str | None]]:
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(select(Delivery.target, Delivery.status, Delivery.attempts,
                                                 Delivery.last_error).where(Delivery.channel == channel))).all()
    return {r.target: (r.status, r.attempts, r.last_error) for r in rows}


async def test_each_refusal_is_handled_as_telegram_means_it(kz: Kezek, world: World, clock: FrozenClock,
                                                           api: BotApiStandIn, bot: Bot) -> None:
    ok, flood, server, slow, blocked = await linked_parents(kz, world, 5)
    api.faults = {flood: ["429"], server: ["500"], slow: ["timeout"]}
    api.blocked = {blocked}
    await world.publish(5, "KG1")  # each of the five is offered a seat: five "your turn" alerts
    policy = unlimited()
    await drain_once(kz, bot, None, policy)

    got = await statuses(kz)
    assert got[str(ok)][0] == "sent"
    # 429: everybody paused for retry_after; the try does not count against the delivery.
    assert got[str(flood)][:2] == ("pending", 0) and "429" in (got[str(flood)][2] or "")
    assert policy.pacer.holds == 1
    # 5xx and a timeout: retried later with backoff.
    assert got[str(server)][:2] == ("pending", 1) and got[str(slow)][:2] == ("pending", 1)
    # 403: given up at once, and the chat is marked as having blocked the bot.
    assert got[str(blocked)][0] == "failed" and "403" in (got[str(blocked)][2] or "")
    async with kz.reading() as ctx:
        assert (await ctx.session.get(Chat, blocked)).blocked_at is not None  # type: ignore[union-attr]

    assert await drain_once(kz, bot, None, policy) == 0  # nothing is due before its time
    clock.advance(seconds=30)
    await drain_once(kz, bot, None, policy)
    got = await statuses(kz)
    assert {got[str(c)][0] for c in (ok, flood, server, slow)} == {"sent"}
    # Every parent who can be reached got the alert exactly once; the blocked chat got nothing.
    received = Counter(chat for chat, _ in api.accepted)
    assert received == Counter({ok: 1, flood: 1, server: 1, slow: 1})
    assert set(api.refusals) == {"429", "500", "timeout", "403"}


async def test_a_chat_that_blocked_the_bot_keeps_its_email_copies_and_comes_back_when_it_writes(
        kz: Kezek, world: World, clock: FrozenClock, api: BotApiStandIn, bot: Bot) -> None:
    [chat] = await linked_parents(kz, world, 1)
    api.blocked = {chat}
    await world.publish(1, "KG1")
    await drain_once(kz, bot, None, unlimited())
    assert (await statuses(kz))[str(chat)][0] == "failed"

    # The parent lets the seat pass (20:00); it opens to everyone: no Telegram for the blocked
    # chat, but the e-mail copy still goes to the application's address.
    clock.advance(hours=11)
    await kz.run_sweeps()
    await kz.route_notices()
    async with kz.reading() as ctx:
        routed = (await ctx.session.execute(
            select(OutboxMessage.kind, Delivery.channel).join(OutboxMessage, OutboxMessage.id == Delivery.outbox_id)
            .where(OutboxMessage.kind != NoticeKind.TURN_CAME))).all()
    assert routed and {c for _, c in routed} == {EMAIL}

    # The parent unblocks the bot and writes to it: the next alert reaches the chat again.
    api.blocked = set()
    assert await kz.chat_seen(chat) == "ru"
    clock.advance(days=1)  # next morning: more seats
    await world.publish(1, "KG1")
    await drain_once(kz, bot, None, unlimited())
    assert [c for c, _ in api.accepted] == [chat]


async def test_a_fan_out_stays_inside_telegrams_limits(kz: Kezek, world: World, api: BotApiStandIn,
                                                      bot: Bot) -> None:
    """The stand-in counts messages over a sliding second as Telegram does and answers 429 past
    30; the sender paces itself, so none is refused."""
    api.rate, api.chat_rate = 30, 1
    chats = await linked_parents(kz, world, 75)
    await world.publish(75, "KG1")
    policy = SendPolicy(batch=200, concurrency=8, pacer=Pacer(30, 1))
    while await drain_once(kz, bot, None, policy):
        pass
    assert sorted(c for c, _ in api.accepted) == chats
    assert api.refusals == Counter()  # not one 429
    assert policy.pacer.holds == 0


def test_the_window_never_lets_more_than_the_rate_into_any_second() -> None:
    window = _Window(30, margin=0.02)
    slots = [window.reserve(now=0.0)[0] for _ in range(200)]
    for i in range(len(slots) - 30):
        assert slots[i + 30] - slots[i] >= 1.0  # any 31 consecutive sends span more than a second
    assert slots[-1] < 200 / 29  # and the pace is not needlessly slow: above 29 a second
    per_chat = _Window(1, margin=0.02)
    assert [round(per_chat.reserve(now=0.0)[0], 2) for _ in range(3)] == [0.0, 1.02, 2.04]


async def test_a_flood_answer_pauses_every_send() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(0, 0, time=lambda: now[0], sleep=sleep)
    await pacer.wait("1")
    assert slept == []
    pacer.hold(7)
    await pacer.wait("2")
    assert now[0] == 7  # the next send, to another chat, waited out the pause


async def test_the_outbox_report_tells_operators_what_failed_and_why(kz: Kezek, world: World,
                                                                     api: BotApiStandIn, bot: Bot) -> None:
    ok, blocked = await linked_parents(kz, world, 2)
    await registrations_sent(kz)
    api.blocked = {blocked}
    await world.publish(2, "KG1")
    await drain_once(kz, bot, None, unlimited())
    report = await kz.outbox_report()
    assert report["deliveries"][TELEGRAM]["sent"] == 1 and report["deliveries"][TELEGRAM]["failed"] == 1
    assert report["deliveries"][EMAIL]["pending"] == 2 and report["deliveries"][EMAIL]["due_now"] == 2
    assert report["blocked_chats"] == 1
    [failed] = report["failed_latest"]
    assert failed["kind"] == "turn_came" and "403" in failed["reason"]
    assert str(blocked) not in failed["to"]  # the recipient is masked
    assert any("403" in reason for reason in report["failed_reasons"])


def test_policy_from_settings_lifts_limits_with_zero() -> None:
    from bot.config import Settings

    policy = SendPolicy.from_settings(Settings(telegram_rate=0, telegram_chat_rate=0, send_concurrency=32,
                                               outbox_lease_seconds=1))
    assert not policy.pacer.limited and policy.concurrency == 32
    assert policy.lease == dt.timedelta(seconds=5)  # a lease shorter than a send is refused
    assert SendPolicy.from_settings(Settings()).pacer.limited


class Held:
    """A port whose sends hang until ``release`` is set (a slow Telegram, a silent SMTP server);
    the targets it was asked to send to."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.targets: list[str] = []

    async def __call__(self, notice: Notice) -> None:
        self.targets.append(notice.target)
        await self.release.wait()


async def leases(kz: Kezek) -> dict[str, dt.datetime]:
    """The lease end of every Telegram delivery a sender holds (tried, not finished)."""
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(select(Delivery.target, Delivery.next_attempt_at).where(
            Delivery.channel == TELEGRAM, Delivery.status == "pending", Delivery.attempts > 0))).all()
    return {r.target: r.next_attempt_at if r.next_attempt_at.tzinfo else r.next_attempt_at.replace(tzinfo=dt.UTC)
            for r in rows}


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)


async def test_a_live_sender_renews_its_lease_and_no_other_sender_takes_its_deliveries(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    """A send that outlasts the lease (a hung SMTP server waits 30 s) stays its sender's: the
    round renews the lease while it holds the delivery, so nobody sends it a second time."""
    chats = await linked_parents(kz, world, 2)
    await registrations_sent(kz)
    await world.publish(2, "KG1")
    await kz.route_notices()
    lease = dt.timedelta(seconds=1.5)  # a heartbeat every 0.5 s
    slow = Held()
    first = asyncio.create_task(kz.deliver_due(TELEGRAM, slow, 10, concurrency=2, lease=lease))
    try:
        async def both_started() -> bool:
            return len(slow.targets) == 2

        await wait_for(both_started, "both sends started")
        clock.advance(seconds=1)  # the first lease has 0.5 s left ...
        renewed_from = clock.now()

        async def renewed() -> bool:
            return all(until >= renewed_from + lease for until in (await leases(kz)).values())

        await wait_for(renewed, "the lease renewed by the live sender")
        clock.advance(seconds=1)  # ... and would have run out by now
        other = Port()
        assert await kz.deliver_due(TELEGRAM, other, 10) == {"sent": 0, "pending": 0, "failed": 0}
        assert other.sent == []  # not taken from a live sender
        slow.release.set()
        assert await first == {"sent": 2, "pending": 0, "failed": 0}
    finally:
        first.cancel()
    assert sorted(slow.targets) == sorted(str(c) for c in chats)


async def test_a_dead_sender_strands_only_the_few_it_had_taken(kz: Kezek, world: World,
                                                              clock: FrozenClock) -> None:
    """Deliveries are taken a few at a time (twice the concurrency ahead): when a sender dies
    mid fan-out, another sends the rest at once, and the few it held one lease later."""
    chats = await linked_parents(kz, world, 30)
    await registrations_sent(kz)
    await world.publish(30, "KG1")
    await kz.route_notices()
    hung = Held()
    dead = asyncio.create_task(kz.deliver_due(TELEGRAM, hung, 100, concurrency=2))

    async def sending() -> bool:
        return len(hung.targets) == 2

    await wait_for(sending, "the first sends in flight")
    dead.cancel()  # the process dies: nothing more is written
    with pytest.raises(asyncio.CancelledError):
        await dead
    stranded = await leases(kz)
    assert set(hung.targets) <= set(stranded) and len(stranded) <= 3 * 2  # not the whole fan-out

    live = Port()
    assert (await kz.deliver_due(TELEGRAM, live, 100, concurrency=2))["sent"] == 30 - len(stranded)
    clock.advance(seconds=LEASE.total_seconds() + 1)  # the dead sender's lease runs out, unrenewed
    assert (await kz.deliver_due(TELEGRAM, live, 100, concurrency=2))["sent"] == len(stranded)
    assert sorted(int(n.target) for n in live.sent) == chats  # each once from the live senders


async def test_a_flood_answer_defers_the_whole_channel_not_only_what_the_round_took(
        kz: Kezek, world: World, clock: FrozenClock, api: BotApiStandIn, bot: Bot) -> None:
    """A round takes a few deliveries at a time; a 429 must still hold back every due alert for
    ``retry_after`` (no try used), not only those the round had taken: the next rounds do not
    knock on Telegram again before then."""
    chats = await linked_parents(kz, world, 30)
    api.faults = {c: ["429"] for c in chats}  # whoever goes first is told to wait
    await world.publish(30, "KG1")
    policy = SendPolicy(batch=100, concurrency=2, pacer=Pacer(0, 0))
    await drain_once(kz, bot, None, policy)
    assert await drain_once(kz, bot, None, policy) == 0  # nothing due before retry_after
    got = await statuses(kz)
    assert {(status, attempts) for status, attempts, _ in got.values()} == {("pending", 0)}
    assert all("429" in (error or "") for _, _, error in got.values())
    assert api.refusals["429"] <= 2 and api.accepted == []  # at most the sends that were in flight
    clock.advance(seconds=2)
    api.faults = {}
    while await drain_once(kz, bot, None, policy):
        pass
    assert sorted(c for c, _ in api.accepted) == chats
