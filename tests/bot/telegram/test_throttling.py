"""Per-chat throttling (bot/telegram/throttling.py) through the real Dispatcher on the mocked Bot of
tests/support/telegram.py, on a fake time source (no sleeps): memory counters and Redis counters."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram.methods import AnswerCallbackQuery

from bot.config import Settings
from bot.telegram.app import build_dispatcher
from bot.telegram.throttling import (
    TOO_MANY,
    MemoryThrottleStore,
    RedisThrottleStore,
    ThrottleMiddleware,
    ThrottleStore,
    make_throttle,
)
from locales import gettext
from services.kezek import Kezek
from tests.support.databases import REDIS_URL, redis_client
from tests.support.telegram import CHAT_ID, RATE, WINDOW, Chats, FakeTime, Harness, is_help, texts
from tests.support.world import stored_language

CHAT, OTHER = CHAT_ID, CHAT_ID + 1


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ThrottleStore]:
    if request.param == "memory":
        yield MemoryThrottleStore()
        return
    client = await redis_client()
    prefix = f"kezek-test-{uuid.uuid4().hex[:12]}"
    try:
        yield RedisThrottleStore(client, prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def setup(kz: Kezek, store: ThrottleStore) -> AsyncIterator[tuple[Chats, FakeTime]]:
    clock = FakeTime()
    throttle = ThrottleMiddleware(RATE, WINDOW, store=store, time=clock)
    harness = Harness(build_dispatcher(kz, throttle=throttle))
    yield Chats(harness), clock
    await harness.bot.session.close()


async def test_a_burst_gets_one_answer_and_no_handler_runs(setup: tuple[Chats, FakeTime], kz: Kezek) -> None:
    tg, clock = setup
    # Within the limit: a language choice and two /help.
    await tg.press(CHAT, "lang:kk")
    assert await stored_language(kz, CHAT) == "kk"
    assert is_help(await tg.text(CHAT, "/help"), "kk")
    assert is_help(await tg.text(CHAT, "/help"), "kk")
    # Over it: one answer, in the chat's language; then silence.
    assert texts(await tg.text(CHAT, "/help")) == [gettext("kk", TOO_MANY)]
    assert await tg.text(CHAT, "/help") == []
    assert await tg.text(CHAT, "/start") == []
    # A press over the limit: only a toast, and no effect (the language stays).
    calls = await tg.press(CHAT, "lang:ru")
    assert [(type(c), c.text) for c in calls] == [(AnswerCallbackQuery, gettext("kk", TOO_MANY))]
    assert await stored_language(kz, CHAT) == "kk"
    # Another chat is not limited by this one.
    assert is_help(await tg.text(OTHER, "/help"))
    # Later in the same window: still dropped.
    clock.now += WINDOW - 2
    assert await tg.text(CHAT, "/help") == []
    # The next window: handled again, and a new burst gets a new single answer.
    clock.now += 2
    calls = await tg.press(CHAT, "lang:ru")
    assert [c.text for c in calls if isinstance(c, AnswerCallbackQuery)] != [gettext("kk", TOO_MANY)]
    assert await stored_language(kz, CHAT) == "ru"
    assert is_help(await tg.text(CHAT, "/help"))
    assert is_help(await tg.text(CHAT, "/help"))
    assert texts(await tg.text(CHAT, "/help")) == [gettext("ru", TOO_MANY)]
    assert await tg.text(CHAT, "/help") == []


async def test_the_other_chat_has_its_own_limit(setup: tuple[Chats, FakeTime]) -> None:
    tg, _clock = setup
    for _ in range(RATE):
        assert is_help(await tg.text(OTHER, "/help"))
    assert texts(await tg.text(OTHER, "/help")) == [gettext("ru", TOO_MANY)]
    for _ in range(RATE):
        assert is_help(await tg.text(CHAT, "/help"))
    assert texts(await tg.text(CHAT, "/help")) == [gettext("ru", TOO_MANY)]


async def test_instances_share_the_limit_through_redis(kz: Kezek) -> None:
    client = await redis_client()
    prefix = f"kezek-test-{uuid.uuid4().hex[:12]}"
    clock = FakeTime()
    harnesses = [Harness(build_dispatcher(kz, throttle=ThrottleMiddleware(
        RATE, WINDOW, store=RedisThrottleStore(client, prefix), time=clock))) for _ in range(2)]
    one, two = Chats(harnesses[0]), Chats(harnesses[1])
    try:
        assert is_help(await one.text(CHAT, "/help"))
        assert is_help(await two.text(CHAT, "/help"))
        assert is_help(await one.text(CHAT, "/help"))
        assert texts(await two.text(CHAT, "/help")) == [gettext("ru", TOO_MANY)]
        assert await one.text(CHAT, "/help") == []
        assert [k async for k in client.scan_iter(match=f"{prefix}:throttle:{CHAT}:*")]
        ttl = await client.ttl(f"{prefix}:throttle:{CHAT}:{int(clock.now // WINDOW)}")
        assert 0 < ttl <= 2 * WINDOW
        clock.now += WINDOW
        assert is_help(await two.text(CHAT, "/help"))
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        for h in harnesses:
            await h.bot.session.close()


class BrokenStore:
    async def hit(self, chat_id: int, window: int, ttl: float) -> int:
        raise ConnectionError("redis is down")

    async def close(self) -> None:
        pass


async def test_a_broken_store_lets_parents_through(kz: Kezek) -> None:
    harness = Harness(build_dispatcher(kz, throttle=ThrottleMiddleware(1, WINDOW, store=BrokenStore())))
    tg = Chats(harness)
    for _ in range(3):
        assert is_help(await tg.text(CHAT, "/help"))
    await harness.bot.session.close()


async def test_make_throttle_follows_the_settings() -> None:
    assert make_throttle(Settings(_env_file=None, throttle_rate=0)) is None  # type: ignore[call-arg]
    memory = make_throttle(Settings(_env_file=None))  # type: ignore[call-arg]
    assert memory is not None and isinstance(memory.store, MemoryThrottleStore)
    assert (memory.rate, memory.per_seconds, memory.time) == (20, 60.0, time.monotonic)
    shared = make_throttle(Settings(_env_file=None, redis_url=REDIS_URL, throttle_rate=5))  # type: ignore[call-arg]
    assert shared is not None and isinstance(shared.store, RedisThrottleStore)
    assert shared.rate == 5 and shared.time is time.time  # wall clock: shared windows across hosts
    await shared.close()
    with pytest.raises(ValueError):
        ThrottleMiddleware(0, 60)
