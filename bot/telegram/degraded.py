"""Redis down is a degraded mode, not an outage: the dialogues (FSM) and the per-chat locks fall
back to this process's memory while Redis does not answer, and go back to Redis once it does.

Without this, aiogram's FSM middleware (which runs before ours) raises on every update and the
parent gets no answer at all. While degraded, a dialogue started on one instance is not seen by
another, and what was kept in memory is not carried back to Redis: a parent in the middle of a
dialogue may have to start it again. One error line when Redis goes away, one when it is back."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation

log = logging.getLogger("kezek.redis")

RETRY_SECONDS = 30.0  # while degraded, Redis is tried again this often

T = TypeVar("T")


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, OSError)


class Outage:
    """Whether Redis is being skipped now; shared by the storage and the isolation."""

    def __init__(self, retry_seconds: float = RETRY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_seconds, self.clock = retry_seconds, clock
        self.retry_at: float | None = None
        self.errors = _redis_errors()

    @property
    def active(self) -> bool:
        return self.retry_at is not None and self.clock() < self.retry_at

    def failed(self, exc: BaseException) -> None:
        if self.retry_at is None:
            log.error("Redis does not answer (%s): dialogues and chat locks are kept in this process's "
                      "memory until it does", type(exc).__name__)
        self.retry_at = self.clock() + self.retry_seconds

    def answered(self) -> None:
        if self.retry_at is not None:
            log.warning("Redis answers again: dialogues and chat locks are shared again")
            self.retry_at = None


class FallbackStorage(BaseStorage):
    """The FSM storage: Redis, or this process's memory while Redis does not answer."""

    def __init__(self, primary: BaseStorage, outage: Outage) -> None:
        self.primary, self.outage = primary, outage
        self.fallback = MemoryStorage()

    @property
    def redis(self) -> Any:
        """The Redis client (the throttle shares its pool)."""
        return getattr(self.primary, "redis", None)

    async def _call(self, use: Callable[[BaseStorage], Awaitable[T]]) -> T:
        if not self.outage.active:
            try:
                result = await use(self.primary)
            except self.outage.errors as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return result
        return await use(self.fallback)

    async def set_state(self, key: StorageKey, state: Any = None) -> None:
        await self._call(lambda storage: storage.set_state(key, state))

    async def get_state(self, key: StorageKey) -> str | None:
        return await self._call(lambda storage: storage.get_state(key))

    async def set_data(self, key: StorageKey, data: Any) -> None:
        await self._call(lambda storage: storage.set_data(key, data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return await self._call(lambda storage: storage.get_data(key))

    async def close(self) -> None:
        with contextlib.suppress(*self.outage.errors):
            await self.primary.close()
        await self.fallback.close()


class FallbackIsolation(BaseEventIsolation):
    """One update of a chat at a time: a Redis lock across instances, or a lock in this process
    while Redis does not answer."""

    def __init__(self, primary: BaseEventIsolation, outage: Outage) -> None:
        self.primary, self.outage = primary, outage
        self.fallback = SimpleEventIsolation()

    @property
    def redis(self) -> Any:
        return getattr(self.primary, "redis", None)

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        held = None
        if not self.outage.active:
            held = self.primary.lock(key)
            try:
                await held.__aenter__()
            except self.outage.errors as exc:
                self.outage.failed(exc)
                held = None
            else:
                self.outage.answered()
        if held is None:
            async with self.fallback.lock(key):
                yield
            return
        try:
            yield
        finally:
            try:
                await held.__aexit__(None, None, None)
            except self.outage.errors:
                pass  # the Redis lock then expires by itself
            except Exception as exc:  # noqa: BLE001 - the update is handled: never fail it now
                # (redis' LockNotOwnedError: the handler outlasted the lock's timeout)
                log.warning("a chat's lock had expired before its update was handled: %s", type(exc).__name__)

    async def close(self) -> None:
        with contextlib.suppress(*self.outage.errors):
            await self.primary.close()
        await self.fallback.close()
