"""The deep link of the registration e-mail (services/deep_link.py), on the bot's side: the bot's
username (``KEZEK_BOT_USERNAME``, else the Bot API's getMe, asked once and kept) and the hook of
the e-mail port that signs the application's token and puts the link into the notice.

An e-mail never goes out with a broken link. When the username cannot be known now (getMe failed:
the Bot API is away), the delivery is retried later like any other; after ``FALLBACK_AFTER`` tries,
or at once when this process has neither a bot nor the setting, or when the link has expired
before the e-mail could go (a long SMTP outage), the e-mail goes without a link and tells the
parent to open the bot and send /link."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot

from locales.formats import parse_moment
from services import deep_link
from services.kezek import Kezek
from services.notices import NoticeKind
from services.notifications import Notice, RetryLater

log = logging.getLogger("kezek.deeplinks")

FALLBACK_AFTER = 3  # tries of an e-mail whose link waits for getMe


class BotUsername:
    """The bot's username for deep links: the configured one, else getMe of the attached bot
    (asked once; a failure is asked again on the next e-mail)."""

    def __init__(self, configured: str = "") -> None:
        self._name = deep_link.valid_username(configured)
        self._bot: Bot | None = None
        self._warned = False

    def attach(self, bot: Bot | None) -> None:
        if bot is not None and self._bot is None:
            self._bot = bot

    @property
    def known(self) -> str | None:
        return self._name

    async def get(self) -> str | None:
        """The username; None when this process cannot know it (no setting, no bot);
        ``RetryLater`` when getMe failed."""
        if self._name is not None:
            return self._name
        if self._bot is None:
            if not self._warned:
                self._warned = True
                log.warning("the bot's username is unknown (no bot and no KEZEK_BOT_USERNAME): registration "
                            "e-mails go without their deep link")
            return None
        try:
            me = await self._bot.get_me()
        except Exception as exc:  # any failure of getMe: try the e-mail later
            raise RetryLater(None, f"the bot's username is unknown: getMe failed ({type(exc).__name__})") from exc
        self._name = deep_link.valid_username(me.username)
        return self._name


NoticeHook = Callable[[Notice], Awaitable[Notice]]


def registration_links(kz: Kezek, usernames: BotUsername) -> NoticeHook:
    """The hook of the e-mail port: a registration notice gets its deep link (``extra["link"]``);
    so does a staff invitation (its token is in the payload, the bot's name is not)."""
    async def add(notice: Notice) -> Notice:
        if notice.kind == NoticeKind.STAFF_INVITE:
            return await _invitation_link(notice)
        if notice.kind != deep_link.REGISTRATION_KIND or notice.application_id is None:
            return notice
        expires_at = parse_moment(notice.payload.get("link_expires_at"))
        if expires_at is None or expires_at.tzinfo is None or expires_at <= kz.clock.now():
            return notice  # the link would not work any more: the e-mail says to use /link
        try:
            username = await usernames.get()
        except RetryLater:
            if notice.attempts < FALLBACK_AFTER:
                raise
            username = None
        if username is None:
            return notice
        token = deep_link.link_token(await kz.signer(), notice.application_id, expires_at, notice.target)
        return dataclasses.replace(notice, extra={
            **notice.extra, "link": deep_link.deep_link(username, token), "link_expires_at": expires_at})

    async def _invitation_link(notice: Notice) -> Notice:
        try:
            username = await usernames.get()
        except RetryLater:
            if notice.attempts < FALLBACK_AFTER:
                raise
            username = None
        token = str(notice.payload.get("code", ""))
        if username is None or not token:
            return notice  # the e-mail says to send /start with the code in the bot
        return dataclasses.replace(notice, extra={**notice.extra, "link": deep_link.deep_link(username, token)})
    return add
