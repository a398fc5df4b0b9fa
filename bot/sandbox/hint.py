"""A claim refused because the claim window is closed (an evening, a weekend), in the sandbox: the
bot's own answer is followed by when the window opens and how to move the sandbox clock there.

``WindowWatch`` stands in for the service facade the handlers get and remembers such a refusal;
the console demo reads it after each update, and ``WindowHintMiddleware`` (``kezek demo`` with a
real bot, registered by the composition root) sends the hint as a second message in the chat."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject

from bot.sandbox.clock import window_hint
from bot.telegram.middlewares import chat_id_of
from services.clock import Clock
from services.errors import OutsideClaimWindow
from services.kezek import Kezek


class WindowWatch:
    """The service facade as one update's handlers see it: a call refused with
    ``OutsideClaimWindow`` is remembered in ``refused`` (and raised on, as before)."""

    def __init__(self, kz: Kezek) -> None:
        self._kz = kz
        self.refused: OutsideClaimWindow | None = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._kz, name)
        if not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        async def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return await value(*args, **kwargs)
            except OutsideClaimWindow as exc:
                self.refused = exc
                raise

        return watched


class WindowHintMiddleware(BaseMiddleware):
    """An outer update middleware, after ``ContextMiddleware`` (it needs ``kz`` and ``lang``): each
    update's handlers get their own ``WindowWatch``; a refusal outside the window is followed by the
    hint (the command that moves the sandbox clock to the window's opening)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        watch = WindowWatch(data["kz"])
        data["kz"] = watch
        result = await handler(event, data)
        chat_id, bot = chat_id_of(data), data.get("bot")
        if watch.refused is not None and chat_id is not None and isinstance(bot, Bot):
            await bot.send_message(chat_id, window_hint(data["lang"], watch.refused, self.clock.now()))
        return result
