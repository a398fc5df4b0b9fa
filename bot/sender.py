"""The senders: the Telegram port of the outbox (aiogram) and the e-mail port, and the loop that
routes and drains the outbox while the bot runs.

aiogram never retries ``TelegramRetryAfter`` (DESIGN.md section 5): it becomes ``RetryLater``
with Telegram's own delay, and the delivery stays due. A user who blocked the bot, or a chat that
is gone, is ``Undeliverable``: no retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.mail import email_port
from bot.notices import render
from services.email import EmailSender
from services.kezek import Kezek
from services.notifications import EMAIL, TELEGRAM, Notice, RetryLater, Undeliverable

log = logging.getLogger("kezek.sender")


def telegram_port(bot: Bot) -> Callable[[Notice], Awaitable[None]]:
    async def send(notice: Notice) -> None:
        rendered = render(notice.lang, notice)
        try:
            await bot.send_message(int(notice.target), rendered.text, reply_markup=rendered.markup)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.retry_after, "telegram retry_after") from exc
        except TelegramForbiddenError as exc:
            raise Undeliverable("the user blocked the bot") from exc
        except TelegramBadRequest as exc:
            raise Undeliverable("telegram refused the message") from exc
        except (TelegramNetworkError, TelegramServerError) as exc:
            raise RetryLater(10, type(exc).__name__) from exc
    return send


async def drain_once(kz: Kezek, bot: Bot | None, mailer: EmailSender | None, batch: int = 50) -> int:
    """Route pending notices and send one batch per channel; how many deliveries were tried.
    Idle (nothing pending or due): one read, no write transaction."""
    channels = tuple(c for c, port in ((TELEGRAM, bot), (EMAIL, mailer)) if port is not None)
    if not await kz.notices_due(channels):
        return 0
    await kz.route_notices()
    tried = 0
    if bot is not None:
        tried += sum((await kz.deliver_due(TELEGRAM, telegram_port(bot), batch)).values())
    if mailer is not None:
        tried += sum((await kz.deliver_due(EMAIL, email_port(mailer), batch)).values())
    return tried


async def outbox_loop(kz: Kezek, bot: Bot | None, mailer: EmailSender | None, *, idle: float = 1.0) -> None:
    """Until cancelled: drain the outbox; when nothing was due, wait ``idle`` seconds. A failing
    round (the database restarting, say) is logged and tried again."""
    while True:
        try:
            tried = await drain_once(kz, bot, mailer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad round
            log.error("outbox round failed: %s", type(exc).__name__)
            tried = 0
        if not tried:
            await asyncio.sleep(idle)
