"""Per-chat throttling (bot/telegram/throttling.py) through the real Dispatcher and the recording session of
test_bot_start, on a fake time source (no sleeps): memory counters and Redis counters."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage, TelegramMethod
from aiogram.types import CallbackQuery, Chat, Message, Update, User

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
from services import chats
from services.kezek import Kezek
from tests.conftest import REDIS_URL, redis_client
from tests.handlers.test_start import BOT_USER, Harness

CHAT, OTHER = 1001, 1002
RATE, WINDOW = 3, 60.0
HELP = "Kezek helps you follow the kindergarten queue. Commands:"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000 * WINDOW + 1.0  # one second into a window

    def __call__(self) -> float:
        return self.now


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


class Chats:
    """Feeds messages and presses of several chats into one Dispatcher."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.ids = count(1)

    async def feed(self, update: Update) -> list[TelegramMethod[Any]]:
        start = len(self.h.session.requests)
        await self.h.dp.feed_update(self.h.bot, update)
        return self.h.session.requests[start:]

    def user(self, chat_id: int) -> User:
        return User(id=chat_id, is_bot=False, first_name="Айгерим", language_code="ru")

    async def text(self, chat_id: int, text: str) -> list[TelegramMethod[Any]]:
        message = Message(message_id=next(self.ids), date=dt.datetime.now(dt.UTC), text=text,
                          chat=Chat(id=chat_id, type="private"), from_user=self.user(chat_id))
        return await self.feed(Update(update_id=next(self.ids), message=message))

    async def press(self, chat_id: int, data: str) -> list[TelegramMethod[Any]]:
        under = Message(message_id=next(self.ids), date=dt.datetime.now(dt.UTC), text="…",
                        chat=Chat(id=chat_id, type="private"), from_user=BOT_USER)
        callback = CallbackQuery(id=f"cb{next(self.ids)}", from_user=self.user(chat_id), chat_instance="ci",
                                 message=under, data=data)
        return await self.feed(Update(update_id=next(self.ids), callback_query=callback))


def texts(calls: list[TelegramMethod[Any]]) -> list[str]:
    return [c.text for c in calls if isinstance(c, SendMessage)]


def is_help(calls: list[TelegramMethod[Any]], lang: str = "ru") -> bool:
    return len(texts(calls)) == 1 and texts(calls)[0].startswith(gettext(lang, HELP))


async def language(kz: Kezek, chat_id: int) -> str | None:
    async with kz.reading(with_calendar=False) as ctx:
        return await chats.get_language(ctx.session, chat_id)


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
    assert await language(kz, CHAT) == "kk"
    assert is_help(await tg.text(CHAT, "/help"), "kk")
    assert is_help(await tg.text(CHAT, "/help"), "kk")
    # Over it: one answer, in the chat's language; then silence.
    assert texts(await tg.text(CHAT, "/help")) == [gettext("kk", TOO_MANY)]
    assert await tg.text(CHAT, "/help") == []
    assert await tg.text(CHAT, "/start") == []
    # A press over the limit: only a toast, and no effect (the language stays).
    calls = await tg.press(CHAT, "lang:ru")
    assert [(type(c), c.text) for c in calls] == [(AnswerCallbackQuery, gettext("kk", TOO_MANY))]
    assert await language(kz, CHAT) == "kk"
    # Another chat is not limited by this one.
    assert is_help(await tg.text(OTHER, "/help"))
    # Later in the same window: still dropped.
    clock.now += WINDOW - 2
    assert await tg.text(CHAT, "/help") == []
    # The next window: handled again, and a new burst gets a new single answer.
    clock.now += 2
    calls = await tg.press(CHAT, "lang:ru")
    assert [c.text for c in calls if isinstance(c, AnswerCallbackQuery)] != [gettext("kk", TOO_MANY)]
    assert await language(kz, CHAT) == "ru"
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
