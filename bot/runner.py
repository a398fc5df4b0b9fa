"""Long polling: the Telegram front as a running process (``kezek run``).

One poller per token: Telegram answers a second one with 409 Conflict (see DESIGN.md section 5);
several instances need webhooks instead."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.app import build_dispatcher
from bot.config import Settings
from services.kezek import Kezek

log = logging.getLogger("kezek.bot")


class MissingTokenError(RuntimeError):
    """No bot token is configured (KEZEK_BOT_TOKEN); the CLI shows a localized refusal."""


def make_bot(settings: Settings) -> Bot:
    """A Bot talking to ``settings.bot_api_url`` (Telegram, a local Bot API server or a stand-in)."""
    token = settings.bot_token.strip()
    if not token:
        raise MissingTokenError("KEZEK_BOT_TOKEN is not set")
    server = TelegramAPIServer.from_base(settings.bot_api_url.rstrip("/"))
    return Bot(token, session=AiohttpSession(api=server))


async def run_polling(settings: Settings, kezek: Kezek, *, handle_signals: bool = True) -> None:
    """Poll for updates until cancelled or stopped by SIGINT/SIGTERM; always closes the bot session.

    Raises ``MissingTokenError`` (before any network I/O) when no token is configured."""
    bot = make_bot(settings)
    try:
        dp = build_dispatcher(kezek)
        log.info("polling %s", settings.bot_api_url)
        await dp.start_polling(bot, handle_signals=handle_signals, close_bot_session=True)
    finally:
        await bot.session.close()
