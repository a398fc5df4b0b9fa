"""The senders: the Telegram port of the outbox (aiogram) and the e-mail port, and the loop that
routes and drains the outbox while the bot runs.

Telegram's limits are kept on our side (``services.pacing.Pacer``: 30 messages a second overall,
one a second per chat, both settings). aiogram never retries ``TelegramRetryAfter`` (ARCHITECTURE.md
"Library traps"): a 429 pauses every send for Telegram's ``retry_after`` and the delivery stays due
without losing a try. 5xx and network errors or timeouts are retried with backoff. A 403 (the user
blocked the bot) gives that delivery up and marks the chat blocked; its e-mail copies go on.

Each round is counted in ``bot.metrics`` (the results per channel; a round that finished without an
error stamps the time the health check reads).

A notice with a file (the referral's PDF with "referral issued", ``handlers.views.referral_pdf``) goes as one
``sendDocument`` whose caption is the notice's text: the parent gets the words and the file
together or not at all, and a failed upload is retried exactly like a failed message (the same
errors, the same backoff, the same pacing slot). A text too long for a caption (1,024 characters)
goes as a message first, then the file."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile

from bot import metrics
from bot.config import Settings
from bot.delivery.deeplinks import BotUsername, registration_links
from bot.delivery.mail import email_port
from bot.delivery.notices import LANGS_IN_EMAIL, Rendered, attachment_note, render
from handlers.views.referral_pdf import Attachments, notice_attachments
from services.email import EmailSender
from services.kezek import Kezek
from services.notifications import EMAIL, LEASE, TELEGRAM, Attachment, Notice, RetryLater, Undeliverable
from services.pacing import Pacer

log = logging.getLogger("kezek.sender")



CAPTION_LIMIT = 1024  # Telegram's limit on a document's caption, in UTF-16 code units


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def _send_documents(bot: Bot, chat_id: int, lang: str, rendered: Rendered, files: list[Attachment]) -> None:
    caption = rendered.text + "\n\n" + attachment_note(lang)
    if _utf16_length(caption) > CAPTION_LIMIT:
        await bot.send_message(chat_id, rendered.text, reply_markup=rendered.markup)
        caption, markup = attachment_note(lang), None
    else:
        markup = rendered.markup
    for i, file in enumerate(files):
        await bot.send_document(chat_id, BufferedInputFile(file.content, filename=file.filename),
                                caption=caption if i == 0 else None, reply_markup=markup if i == 0 else None)


def telegram_port(bot: Bot, attachments: Attachments | None = None) -> Callable[[Notice], Awaitable[None]]:
    """Sends ``notice`` to its chat; ``attachments`` says which files go with it (sent as
    documents, the first with the notice's text as its caption)."""
    async def send(notice: Notice) -> None:
        rendered = render(notice.lang, notice)
        files = await attachments(notice) if attachments is not None else []
        try:
            if files:
                await _send_documents(bot, int(notice.target), notice.lang, rendered, files)
            else:
                await bot.send_message(int(notice.target), rendered.text, reply_markup=rendered.markup)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.retry_after, "telegram 429 retry_after", flood=True) from exc
        except TelegramForbiddenError as exc:
            raise Undeliverable("telegram 403: the user blocked the bot", blocked=True) from exc
        except TelegramBadRequest as exc:
            raise Undeliverable("telegram 400: refused the message") from exc
        except TelegramServerError as exc:
            raise RetryLater(None, "telegram 5xx") from exc
        except TelegramNetworkError as exc:
            raise RetryLater(None, "telegram network error or timeout") from exc
    return send


@dataclass
class SendPolicy:
    """How hard the senders push: deliveries tried per round at most (taken a few at a time:
    ``Kezek.deliver_due``), sends in flight at once, the lease (renewed while a sender holds a
    delivery: a dead sender's are due again within one lease), and Telegram's limits (a Pacer
    kept across rounds); and the bot's username for the deep links of registration e-mails
    (KEZEK_BOT_USERNAME, else getMe of the senders' bot, kept here)."""

    batch: int = 100
    concurrency: int = 8
    email_concurrency: int = 4
    lease: dt.timedelta = LEASE
    pacer: Pacer = field(default_factory=Pacer)
    usernames: BotUsername = field(default_factory=BotUsername)

    @classmethod
    def from_settings(cls, settings: Settings) -> SendPolicy:
        concurrency = max(settings.send_concurrency, 1)
        return cls(batch=max(100, concurrency * 8), concurrency=concurrency,
                   lease=dt.timedelta(seconds=max(settings.outbox_lease_seconds, 5)),
                   pacer=Pacer(settings.telegram_rate, settings.telegram_chat_rate),
                   usernames=BotUsername(settings.bot_username))


async def drain_once(kz: Kezek, bot: Bot | None, mailer: EmailSender | None,
                     policy: SendPolicy | None = None) -> int:
    """Route pending notices and send one batch per channel; how many deliveries were tried.
    Idle (nothing pending or due): one read, no write transaction."""
    policy = policy or SendPolicy()
    policy.usernames.attach(bot)
    channels = tuple(c for c, port in ((TELEGRAM, bot), (EMAIL, mailer)) if port is not None)
    meter = metrics.current()
    try:
        tried = await _drain(kz, bot, mailer, policy, channels, meter)
    except Exception:
        meter.sender_round(channels, ok=False)
        raise
    meter.sender_round(channels, ok=True)
    return tried


async def _drain(kz: Kezek, bot: Bot | None, mailer: EmailSender | None, policy: SendPolicy,
                 channels: tuple[str, ...], meter: metrics.Metrics) -> int:
    if not await kz.notices_due(channels):
        return 0
    await kz.route_notices()
    rounds: dict[str, Awaitable[dict[str, int]]] = {}
    if bot is not None:
        rounds[TELEGRAM] = kz.deliver_due(TELEGRAM, telegram_port(bot, notice_attachments(kz.referral_document)),
                                          policy.batch, concurrency=policy.concurrency, pacer=policy.pacer,
                                          lease=policy.lease)
    if mailer is not None:
        mail = email_port(mailer, notice_attachments(kz.referral_document, LANGS_IN_EMAIL),
                          registration_links(kz, policy.usernames))
        rounds[EMAIL] = kz.deliver_due(EMAIL, mail, policy.batch,
                                       concurrency=policy.email_concurrency, lease=policy.lease)
    results = await asyncio.gather(*rounds.values())
    for channel, counts in zip(rounds, results, strict=True):
        meter.delivered(channel, counts)
    return sum(sum(counts.values()) for counts in results)


async def outbox_loop(kz: Kezek, bot: Bot | None, mailer: EmailSender | None, *, idle: float = 1.0,
                      policy: SendPolicy | None = None, wake: asyncio.Event | None = None) -> None:
    """Until cancelled: drain the outbox, each channel in a loop of its own (a hung SMTP server,
    whose every copy waits out the SMTP timeout, must not hold up the "your turn" alerts); when
    nothing was due, wait ``idle`` seconds (or until ``wake`` is set: the console demo wakes it
    after each update). A failing round (the database restarting, say) is logged and tried again."""
    policy = policy or SendPolicy()
    policy.usernames.attach(bot)  # the e-mail loop has no bot of its own: the deep links need its username
    # The health check judges these channels by this process's rounds from now on.
    metrics.current().senders_started(c for c, port in ((TELEGRAM, bot), (EMAIL, mailer)) if port is not None)
    ports: list[tuple[Bot | None, EmailSender | None]] = [(bot, None)] if bot is not None else []
    ports += [(None, mailer)] if mailer is not None else []
    if not ports:
        return
    wakes = [asyncio.Event() for _ in ports] if wake is not None else [None] * len(ports)
    loops = [_channel_loop(kz, b, m, idle, policy, w) for (b, m), w in zip(ports, wakes, strict=True)]
    if wake is not None:
        loops.append(_fan_out_wake(wake, [w for w in wakes if w is not None]))
    await asyncio.gather(*loops)


async def _fan_out_wake(wake: asyncio.Event, targets: list[asyncio.Event]) -> None:
    while True:
        await wake.wait()
        wake.clear()
        for target in targets:
            target.set()


async def _channel_loop(kz: Kezek, bot: Bot | None, mailer: EmailSender | None, idle: float,
                        policy: SendPolicy, wake: asyncio.Event | None) -> None:
    while True:
        if wake is not None:
            wake.clear()
        try:
            tried = await drain_once(kz, bot, mailer, policy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad round
            log.error("outbox round failed: %s", type(exc).__name__)
            tried = 0
        if tried:
            continue
        if wake is None:
            await asyncio.sleep(idle)
            continue
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that comes just as the
        # event is set, and the loop would never end.
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=idle)
        finally:
            waiter.cancel()
