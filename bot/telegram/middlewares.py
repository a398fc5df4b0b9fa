"""Outer middlewares of the Telegram front.

* ``ErrorBoundaryMiddleware`` — catches whatever a handler raises, logs it without personal data
  (exception type, update id, event kind and the stack frames' locations; never the message text or the
  exception's own message, which may carry an IIN or a phone number) and answers the user politely
  in their language.
* ``UpdateMetricsMiddleware`` — counts every update by type and outcome and times it
  (``bot.metrics``); the outcome is ``error`` when the error boundary caught something (it marks
  the update's ``data`` with ``FAILED``) or when anything escaped it.
* ``ContextMiddleware`` — puts the service facade (``kz``) and the chat's language (``lang``) into
  the handler data. The language is the one the chat chose (``chats`` table), else Telegram's
  ``language_code`` of the user, else Russian.

They are registered on ``dp.update`` as outer middlewares (after aiogram's own): the metrics
first (they see the whole handling, the boundary's apology included), then the error boundary so
that it also covers a failing language lookup, then the context. The per-chat throttle
(``bot.telegram.throttling``) sits between them, so that a flood is dropped before any database work.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Chat, TelegramObject, Update, User

from bot import metrics as metrics_module
from locales import LANGUAGES, gettext, normalize_language
from locales.errors import error_text
from services.errors import KezekError
from services.kezek import Kezek

log = logging.getLogger("kezek.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Set in an update's data by the error boundary when it caught a failure (read by the metrics).
FAILED = "kezek_failed"


def chat_id_of(data: dict[str, Any]) -> int | None:
    chat: Chat | None = data.get("event_chat")
    if chat is not None:
        return chat.id
    user: User | None = data.get("event_from_user")
    return user.id if user is not None else None


def telegram_language(data: dict[str, Any]) -> str:
    user: User | None = data.get("event_from_user")
    return normalize_language(user.language_code if user is not None else None)


class ContextMiddleware(BaseMiddleware):
    def __init__(self, kezek: Kezek) -> None:
        self.kezek = kezek

    async def language_of(self, data: dict[str, Any]) -> str:
        """The chat's chosen language, else the client's ``language_code``, else Russian. (A chat
        that writes has not blocked the bot: ``chat_seen`` resumes its notices if it had.)"""
        chat_id = chat_id_of(data)
        if chat_id is not None:
            chosen = await self.kezek.chat_seen(chat_id)
            if chosen in LANGUAGES:
                return chosen
        return telegram_language(data)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        data["kz"] = self.kezek
        data["lang"] = telegram_language(data)  # in case the lookup fails: the error boundary uses it
        data["lang"] = await self.language_of(data)
        return await handler(event, data)


def _kind(event: TelegramObject) -> str:
    """The update's type (message, callback_query...): a label of a small, fixed set."""
    if not isinstance(event, Update):
        return type(event).__name__.lower()
    try:
        return event.event_type or "unknown"
    except Exception:  # noqa: BLE001 - aiogram raises for an update of a type it does not know
        return "unknown"


class UpdateMetricsMiddleware(BaseMiddleware):
    """Counts and times each update (``bot.metrics``; ``metrics``: the process's when None)."""

    def __init__(self, metrics: metrics_module.Metrics | None = None) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        kind = _kind(event)
        started = time.perf_counter()
        failed = True
        try:
            result = await handler(event, data)
            failed = bool(data.get(FAILED))
            return result
        finally:
            metrics = self.metrics or metrics_module.current()
            metrics.update_handled(kind, time.perf_counter() - started, failed=failed)


def _frames(exc: BaseException) -> str:
    """Where it failed: file, line and function of each frame, without source text or values."""
    return "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__))


def error_message(lang: str, exc: BaseException) -> str:
    if isinstance(exc, KezekError):
        return error_text(lang, exc)
    return gettext(lang, "Something went wrong. Please try again later.")


class ErrorBoundaryMiddleware(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except Exception as exc:  # noqa: BLE001 - this is the boundary
            data[FAILED] = True
            update = event if isinstance(event, Update) else None
            log.error(
                "handler failed: %s in update %s (%s)\n%s",
                type(exc).__name__,
                update.update_id if update is not None else "?",
                update.event_type if update is not None else type(event).__name__,
                _frames(exc),
            )
            lang = data.get("lang") or telegram_language(data)
            await self._answer(data.get("bot"), update, data, error_message(lang, exc))
            return None

    @staticmethod
    async def _answer(bot: Bot | None, update: Update | None, data: dict[str, Any], text: str) -> None:
        if bot is None:
            return
        try:
            if update is not None and update.callback_query is not None:
                try:
                    await bot.answer_callback_query(update.callback_query.id, text=text, show_alert=True)
                    return
                except Exception as exc:  # noqa: BLE001 - e.g. already answered; send a message instead
                    log.warning("could not answer the callback: %s", type(exc).__name__)
            chat_id = chat_id_of(data)
            if chat_id is not None:
                await bot.send_message(chat_id, text)
        except Exception as exc:  # noqa: BLE001 - never let the apology itself crash polling
            log.error("could not tell the user about a failure: %s", type(exc).__name__)
