"""Per-chat throttling: an outer middleware on ``dp.update``.

At most ``rate`` messages and button presses per chat in each window of ``per_seconds`` (a fixed
window, numbered ``int(now // per_seconds)`` on an injected time source). An update over the limit is
dropped before any handler or database work:

* the first dropped message of a window gets ONE localized answer ("Too many messages...");
  the rest of the window is dropped silently;
* a dropped button press gets ``answerCallbackQuery`` with that text (a toast that also stops the
  button's spinner; it adds nothing to the chat).

Counters live in memory (one process) or in Redis (``INCR`` + ``EXPIRE`` of one key per chat and
window), so that several bot instances behind a load balancer share one limit. With Redis the time
source must be wall-clock seconds (``time.time``): the window number is part of the shared key, and
monotonic clocks of different hosts do not agree. A failing store never blocks parents: the update
goes through and the failure is logged (its type only).

Nothing personal is logged: no chat id, no text.
"""

from __future__ import annotations

import logging
import math
import time as _time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update

from bot.telegram.middlewares import chat_id_of, telegram_language
from locales import N_, gettext

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.config import Settings

log = logging.getLogger("kezek.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
TimeSource = Callable[[], float]
LanguageOf = Callable[[dict[str, Any]], Awaitable[str]]

TOO_MANY = N_("Too many messages. Please wait a minute and try again.")
# The update's data key: (chat id, count) when bot.telegram.gate.ChatGate counted the update already, in its
# one round trip to Redis before the update.
THROTTLE_COUNTED = "kezek_throttle_counted"


class ThrottleStore(Protocol):
    async def hit(self, chat_id: int, window: int, ttl: float) -> int:
        """Count one update of ``chat_id`` in ``window``; return the count so far (1 for the first)."""

    async def close(self) -> None: ...


class MemoryThrottleStore:
    """Counters of one process. Old windows are forgotten as the dictionary grows."""

    def __init__(self, max_chats: int = 100_000) -> None:
        self._counts: dict[int, tuple[int, int]] = {}
        self._max_chats = max_chats

    async def hit(self, chat_id: int, window: int, ttl: float) -> int:
        seen_window, count = self._counts.get(chat_id, (window, 0))
        count = count + 1 if seen_window == window else 1
        if chat_id not in self._counts and len(self._counts) >= self._max_chats:
            self._counts = {c: v for c, v in self._counts.items() if v[0] >= window}
        self._counts[chat_id] = (window, count)
        return count

    async def close(self) -> None:
        self._counts.clear()


class RedisThrottleStore:
    """Counters shared by every instance: ``<prefix>:throttle:<chat>:<window>``, INCR + EXPIRE."""

    def __init__(self, redis: Redis, prefix: str = "kezek", *, owns_client: bool = False) -> None:
        self.redis = redis
        self.prefix = prefix
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, prefix: str = "kezek") -> RedisThrottleStore:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), prefix, owns_client=True)

    def key(self, chat_id: int, window: int) -> str:
        return f"{self.prefix}:throttle:{chat_id}:{window}"

    @staticmethod
    def expiry(ttl: float) -> int:
        """Twice the window: a key outlives its window a little, then Redis drops it."""
        return max(1, math.ceil(ttl * 2))

    async def hit(self, chat_id: int, window: int, ttl: float) -> int:
        key = self.key(chat_id, window)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.expiry(ttl))
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        if self._owns_client:
            await self.redis.aclose()


async def _client_language(data: dict[str, Any]) -> str:
    return str(data.get("lang") or telegram_language(data))


class ThrottleMiddleware(BaseMiddleware):
    """Register on ``dp.update`` as an outer middleware (after aiogram's own, which put
    ``event_chat`` into the data). ``language`` finds the chat's language for the one answer
    (ContextMiddleware.language_of: the chosen language, else the client's)."""

    def __init__(self, rate: int, per_seconds: float, *, store: ThrottleStore | None = None,
                 time: TimeSource = _time.monotonic, language: LanguageOf | None = None) -> None:
        if rate < 1 or per_seconds <= 0:
            raise ValueError("rate must be >= 1 and per_seconds > 0")
        self.rate = rate
        self.per_seconds = per_seconds
        self.store: ThrottleStore = store if store is not None else MemoryThrottleStore()
        self.time = time
        # None: the client's language; build_dispatcher plugs in ContextMiddleware.language_of.
        self.language: LanguageOf | None = language

    async def close(self) -> None:
        await self.store.close()

    @staticmethod
    def _counted_chat(event: TelegramObject, data: dict[str, Any]) -> int | None:
        """The chat an update counts for; None: not counted (only what a person sends is limited)."""
        if not isinstance(event, Update) or (
                event.message is None and event.edited_message is None and event.callback_query is None):
            return None
        return chat_id_of(data)

    def redis_count(self, event: TelegramObject, data: dict[str, Any], redis: Any) -> tuple[str, int, int] | None:
        """For bot.telegram.gate.ChatGate: (counter key, chat id, key expiry in seconds) when this update is
        counted and the counters are in Redis on the client ``redis``; else None."""
        store = self.store
        if not isinstance(store, RedisThrottleStore) or store.redis is not redis:
            return None
        chat_id = self._counted_chat(event, data)
        if chat_id is None:
            return None
        return store.key(chat_id, int(self.time() // self.per_seconds)), chat_id, store.expiry(self.per_seconds)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat_id = self._counted_chat(event, data)
        if chat_id is None or not isinstance(event, Update):  # (counted: an Update)
            return await handler(event, data)
        counted = data.pop(THROTTLE_COUNTED, None)
        if counted is not None and counted[0] == chat_id:
            count = counted[1]
        else:
            window = int(self.time() // self.per_seconds)
            try:
                count = await self.store.hit(chat_id, window, self.per_seconds)
            except Exception as exc:  # noqa: BLE001 - a broken store must not lock parents out
                log.warning("throttle store failed (%s); the update is let through", type(exc).__name__)
                return await handler(event, data)
        if count <= self.rate:
            return await handler(event, data)
        log.info("update %s dropped by the throttle", event.update_id)
        first = count == self.rate + 1
        if event.callback_query is None and not first:
            return None
        bot: Bot | None = data.get("bot")
        if bot is None:
            return None
        try:
            text = gettext(await (self.language or _client_language)(data), TOO_MANY)
            if event.callback_query is not None:
                await bot.answer_callback_query(event.callback_query.id, text=text)
            else:
                await bot.send_message(chat_id, text)
        except Exception as exc:  # noqa: BLE001 - e.g. the parent blocked the bot
            log.warning("could not answer a throttled update: %s", type(exc).__name__)
        return None


def make_throttle(settings: Settings, *, redis: Redis | None = None, prefix: str = "kezek",
                  language: LanguageOf | None = None,
                  time: TimeSource | None = None) -> ThrottleMiddleware | None:
    """The throttle the settings ask for (None when ``throttle_rate`` is 0).

    With Redis configured the counters are shared: ``redis`` (e.g. the FSM storage's client, closed
    with the storage) or a client of its own from ``settings.redis_url``; the windows then follow
    wall-clock time. Otherwise counters are per process on the monotonic clock."""
    if settings.throttle_rate <= 0:
        return None
    store: ThrottleStore
    if redis is not None:
        store = RedisThrottleStore(redis, prefix)
    elif settings.redis_url:
        store = RedisThrottleStore.from_url(settings.redis_url, prefix)
    else:
        store = MemoryThrottleStore()
    default_time = _time.monotonic if isinstance(store, MemoryThrottleStore) else _time.time
    return ThrottleMiddleware(settings.throttle_rate, settings.throttle_per_seconds, store=store,
                              time=time or default_time, language=language)
