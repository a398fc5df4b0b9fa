"""The way into a handler with Redis: one round trip before an update is handled and one after.

aiogram's FSM middleware with Redis asks it three things before every update, one after another:
the chat's lock (``SET NX PX``), the dialogue's state (``GET``), and then our throttle counts the
update (``INCR`` + ``EXPIRE`` in a transaction); after the update the lock is released (a script).
Four round trips, each costing the bot more CPU than Redis spends on it (the client's command
machinery, the socket write, the wake-up). ``ChatGate`` takes the FSM middleware's place and asks
the first three in one script, which takes the lock and, only if it got it, reads the state under
it: the same order as aiogram's (the state is read after the lock is held, aiogram issue 1317).
The throttle's count, done in the same script, is handed to ``ThrottleMiddleware`` in the
update's data. Same Redis keys, lock timeout and token check as aiogram's ``RedisEventIsolation``
and ``RedisStorage``; a handler still reads and writes its dialogue through the storage.

Redis down: as before (bot/telegram/degraded.py), the update goes through the fallback lock and storage in
this process's memory, and the throttle counts in its own store (which lets the update through
when Redis fails). A single Redis server or a primary with replicas, not Redis Cluster: the
script's keys are one chat's and would sit in different slots.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiogram import Bot
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.types import TelegramObject

from bot.telegram.degraded import FallbackIsolation, FallbackStorage
from bot.telegram.throttling import THROTTLE_COUNTED

if TYPE_CHECKING:
    from bot.telegram.throttling import ThrottleMiddleware

log = logging.getLogger("kezek.redis")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

RETRY_SECONDS = 0.05  # a chat's lock held by another update: asked again this often (redis-py: 0.1)

# KEYS: the chat's lock, its FSM state[, its throttle counter]; ARGV: token, lock ms[, counter ttl s].
# The count is done whether the lock was free or not (the update is counted once, on the first try).
ENTER = """
local got = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
local count = false
if #KEYS > 2 then
  count = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
if not got then
  return {0, false, count}
end
return {1, redis.call('GET', KEYS[2]), count}
"""

# redis-py's release: only the holder's token deletes the lock.
LEAVE = """
local token = redis.call('GET', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""


class ChatGate(FSMContextMiddleware):
    """aiogram's ``FSMContextMiddleware`` for ``FallbackStorage``/``FallbackIsolation`` over
    Redis (``bot.telegram.app.make_storage``); ``throttle``: counted in the same round trip when it keeps
    its counters in Redis (``build_dispatcher`` sets it)."""

    def __init__(self, storage: FallbackStorage, isolation: FallbackIsolation, **kwargs: Any) -> None:
        super().__init__(storage=storage, events_isolation=isolation, **kwargs)
        primary = storage.primary
        self.redis = cast(Any, primary).redis
        self.key_builder = cast(Any, primary).key_builder
        self.outage = storage.outage
        timeout = cast(Any, isolation.primary).lock_kwargs.get("timeout")
        self.lock_ms = str(int(float(timeout) * 1000)) if timeout else None
        self.throttle: ThrottleMiddleware | None = None
        self._enter = self.redis.register_script(ENTER)
        self._leave = self.redis.register_script(LEAVE)
        # Unique across instances without a uuid per update: a random part per gate, then a count.
        prefix = secrets.token_hex(8)
        self._tokens = (f"{prefix}:{n}" for n in itertools.count())

    @classmethod
    def over(cls, storage: Any, isolation: Any) -> ChatGate | None:
        """The gate for this storage and isolation, or None when they are not Redis with its
        fallback (memory storage: nothing to save)."""
        from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

        if (isinstance(storage, FallbackStorage) and isinstance(isolation, FallbackIsolation)
                and isinstance(storage.primary, RedisStorage) and isinstance(isolation.primary, RedisEventIsolation)
                and storage.outage is isolation.outage and storage.primary.redis is isolation.primary.redis):
            return cls(storage, isolation)
        return None

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = self.resolve_event_context(cast(Bot, data["bot"]), data)
        data["fsm_storage"] = self.storage
        if context is None:
            return await handler(event, data)
        if self.outage.active or self.lock_ms is None:
            return await super().__call__(handler, event, data)  # the fallback (or a lock without timeout)
        lock_key = self.key_builder.build(context.key, "lock")
        token = next(self._tokens)
        counted = self.throttle.redis_count(event, data, self.redis) if self.throttle is not None else None
        keys = [lock_key, self.key_builder.build(context.key, "state")]
        try:
            if counted is not None:
                counter, chat_id, ttl = counted
                got, state, count = await self._enter(keys=[*keys, counter], args=[token, self.lock_ms, ttl])
                data[THROTTLE_COUNTED] = (chat_id, int(count))
            else:
                got, state, _ = await self._enter(keys=keys, args=[token, self.lock_ms])
            while not got:  # another update of this chat is being handled (here or elsewhere)
                await asyncio.sleep(RETRY_SECONDS)
                got, state, _ = await self._enter(keys=keys, args=[token, self.lock_ms])
        except self.outage.errors as exc:
            self.outage.failed(exc)
            data.pop(THROTTLE_COUNTED, None)
            return await super().__call__(handler, event, data)
        self.outage.answered()
        data.update({"state": context, "raw_state": state.decode("utf-8") if isinstance(state, bytes) else state})
        try:
            return await handler(event, data)
        finally:
            await self._release(lock_key, token)

    async def _release(self, lock_key: str, token: str) -> None:
        try:
            released = await self._leave(keys=[lock_key], args=[token])
        except self.outage.errors:
            return  # the lock then expires by itself
        except Exception as exc:  # noqa: BLE001 - the update is handled: never fail it now
            log.warning("could not release a chat's lock: %s", type(exc).__name__)
            return
        if not released:
            log.warning("a chat's lock had expired before its update was handled")
