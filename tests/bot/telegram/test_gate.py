"""bot.telegram.gate.ChatGate: with Redis, the chat's lock, its dialogue state and the throttle's count in
one round trip before an update, the lock released in one after. Through the real Dispatcher of
two "instances" on one Redis (each test its own key prefix); skipped when Redis is not reachable."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiogram import Dispatcher
from aiogram.types import Message

from bot.config import Settings
from bot.telegram.app import CHAT_LOCK_SECONDS, build_dispatcher, make_storage
from bot.telegram.gate import ChatGate
from bot.telegram.throttling import TOO_MANY, RedisThrottleStore, ThrottleMiddleware
from locales import gettext
from services.kezek import Kezek
from tests.support.databases import REDIS_URL
from tests.support.telegram import CHAT_ID, RATE, WINDOW, Chats, FakeTime, Harness, is_help, texts

CHAT, OTHER = CHAT_ID, CHAT_ID + 1


def instance(kz: Kezek, prefix: str, clock: FakeTime | None = None, url: str = REDIS_URL) -> Harness:
    """One bot instance as bot.telegram.runner builds it: Redis storage and isolation, the throttle on the
    storage's client."""
    storage, isolation = make_storage(Settings(_env_file=None, redis_url=url), prefix=prefix)  # type: ignore[call-arg]
    throttle = ThrottleMiddleware(RATE, WINDOW, store=RedisThrottleStore(storage.redis, prefix),  # type: ignore[attr-defined]
                                  time=clock or FakeTime())
    return Harness(build_dispatcher(kz, storage=storage, events_isolation=isolation, throttle=throttle))


async def shut(*harnesses: Harness) -> None:
    for h in harnesses:
        await h.dp.fsm.close()
        await h.bot.session.close()


def gate_of(dp: Dispatcher) -> ChatGate:
    assert isinstance(dp.fsm, ChatGate)
    return dp.fsm


async def test_the_gate_takes_the_fsm_middlewares_place_only_with_redis(kz: Kezek, redis: tuple[Any, str]) -> None:
    _client, prefix = redis
    with_redis = instance(kz, prefix)
    try:
        gate = gate_of(with_redis.dp)
        assert list(with_redis.dp.update.outer_middleware).count(gate) == 1
        assert gate.lock_ms == str(CHAT_LOCK_SECONDS * 1000)
    finally:
        await shut(with_redis)
    plain = Harness(build_dispatcher(kz))
    assert not isinstance(plain.dp.fsm, ChatGate)
    await plain.bot.session.close()


async def test_each_update_is_counted_once_and_instances_share_the_limit(kz: Kezek, redis: tuple[Any, str]) -> None:
    """The gate counts for the throttle: RATE messages pass, not RATE / 2 (a second count by the
    throttle's own store would halve every parent's allowance)."""
    client, prefix = redis
    clock = FakeTime()
    one, two = instance(kz, prefix, clock), instance(kz, prefix, clock)
    try:
        a, b = Chats(one), Chats(two)
        assert is_help(await a.text(CHAT, "/help"))
        assert is_help(await b.text(CHAT, "/help"))
        assert is_help(await a.text(CHAT, "/help"))
        counter = f"{prefix}:throttle:{CHAT}:{int(clock.now // WINDOW)}"
        assert int(await client.get(counter)) == RATE
        assert 0 < await client.ttl(counter) <= 2 * WINDOW
        assert texts(await b.text(CHAT, "/help")) == [gettext("ru", TOO_MANY)]
        assert await a.text(CHAT, "/help") == []
        assert is_help(await a.text(OTHER, "/help"))  # another chat has its own count
        clock.now += WINDOW
        assert is_help(await b.text(CHAT, "/help"))
        # Nothing of the lock is left once an update is handled.
        assert [k async for k in client.scan_iter(match=f"{prefix}:*:lock")] == []
    finally:
        await shut(one, two)


async def test_one_chats_updates_are_handled_one_at_a_time_across_instances(
        kz: Kezek, redis: tuple[Any, str]) -> None:
    _client, prefix = redis
    one, two = instance(kz, prefix), instance(kz, prefix)
    inside: list[int] = []
    overlaps: list[tuple[int, ...]] = []
    for h in (one, two):  # (the Dispatcher's own handlers come before its routers')
        @h.dp.message(lambda m: m.text == "slow")
        async def slow(message: Message) -> None:
            inside.append(message.chat.id)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
            await asyncio.sleep(0.15)
            inside.remove(message.chat.id)
            await message.answer("done")

    try:
        a, b = Chats(one), Chats(two)
        await asyncio.gather(a.text(CHAT, "slow"), b.text(CHAT, "slow"), a.text(CHAT, "slow"))
        assert texts(one.session.requests) + texts(two.session.requests) == ["done"] * 3
        assert overlaps == []  # never two of one chat at once, on one instance or two
        third = OTHER + 1  # (CHAT has had its RATE messages of this window)
        await asyncio.gather(a.text(OTHER, "slow"), b.text(third, "slow"))
        assert [sorted(o) for o in overlaps] == [[OTHER, third]]  # two chats do not wait for each other
    finally:
        await shut(one, two)


async def test_a_lock_left_by_a_killed_instance_holds_the_chat_until_it_expires(
        kz: Kezek, redis: tuple[Any, str]) -> None:
    client, prefix = redis
    clock = FakeTime()
    harness = instance(kz, prefix, clock)
    try:
        lock = f"{prefix}:42:{CHAT}:{CHAT}:lock"
        await client.set(lock, "a-killed-instance", px=300)
        replies = await Chats(harness).text(CHAT, "/help")
        assert is_help(replies)  # answered once the dead instance's lock expired
        assert await client.get(lock) is None
        # Asked again and again while it waited, the update was counted once.
        assert int(await client.get(f"{prefix}:throttle:{CHAT}:{int(clock.now // WINDOW)}")) == 1
    finally:
        await shut(harness)


async def test_a_handler_that_outlived_its_lock_leaves_the_new_holders_lock(
        kz: Kezek, redis: tuple[Any, str], caplog: pytest.LogCaptureFixture) -> None:
    client, prefix = redis
    harness = instance(kz, prefix)
    gate_of(harness.dp).lock_ms = "50"
    lock = f"{prefix}:42:{CHAT}:{CHAT}:lock"

    @harness.dp.message(lambda m: m.text == "slow")
    async def slow(message: Message) -> None:
        await asyncio.sleep(0.2)  # the lock expired meanwhile, and another update took it
        await client.set(lock, "another-update", px=5000)
        await message.answer("done")

    try:
        with caplog.at_level(logging.WARNING, logger="kezek.redis"):
            assert texts(await Chats(harness).text(CHAT, "slow")) == ["done"]
        assert await client.get(lock) == b"another-update"  # not released by the one that lost it
        assert any("expired before its update was handled" in r.getMessage() for r in caplog.records)
    finally:
        await shut(harness)


async def test_redis_going_away_falls_back_to_memory_and_comes_back(kz: Kezek, redis: tuple[Any, str],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Redis stops answering between two updates: the next one is handled on the memory fallback
    (one error line), and the gate is used again once Redis answers."""
    client, prefix = redis
    clock = FakeTime()
    harness = instance(kz, prefix, clock)
    gate = gate_of(harness.dp)
    tg = Chats(harness)
    try:
        assert is_help(await tg.text(CHAT, "/help"))
        real_enter = gate._enter

        async def unreachable(**_kwargs: Any) -> Any:
            raise ConnectionError("Redis is away")

        gate._enter = unreachable
        with caplog.at_level(logging.WARNING, logger="kezek.redis"):
            assert is_help(await tg.text(CHAT, "/help"))
            assert is_help(await tg.text(CHAT, "/help"))  # within the retry pause: memory, no new error
        assert [r.levelname for r in caplog.records if r.name == "kezek.redis"] == ["ERROR"]
        gate._enter = real_enter
        gate.outage.retry_at = 0.0  # the retry pause is over
        assert texts(await tg.text(CHAT, "/help")) == [gettext("ru", TOO_MANY)]  # Redis counts again
        assert not gate.outage.active
        assert int(await client.get(f"{prefix}:throttle:{CHAT}:{int(clock.now // WINDOW)}")) == RATE + 1
    finally:
        await shut(harness)
