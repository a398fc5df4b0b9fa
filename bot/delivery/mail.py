"""The e-mail side of the senders: which mailer runs (SMTP or the .eml folder) and the port that
turns a delivery into an e-mail copy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.config import Settings
from bot.delivery.notices import render_email
from handlers.views.referral_pdf import Attachments
from services.clock import Clock
from services.email import EmailSender, FolderSender, SmtpSender
from services.notifications import Notice


def make_mailer(settings: Settings, clock: Clock) -> EmailSender:
    """SMTP when a server is configured, else .eml files in the mail folder (the embedded default)."""
    if settings.smtp_host:
        return SmtpSender(clock, settings.smtp_host, settings.smtp_port, settings.smtp_from,
                          username=settings.smtp_user, password=settings.smtp_password,
                          starttls=settings.smtp_starttls and not settings.smtp_tls, use_tls=settings.smtp_tls)
    return FolderSender(clock, settings.mail_dir, settings.smtp_from)


def email_port(mailer: EmailSender, attachments: Attachments | None = None,
               prepare: Callable[[Notice], Awaitable[Notice]] | None = None) -> Callable[[Notice], Awaitable[None]]:
    """Renders the copy of ``notice`` (text + HTML, Kazakh and Russian, with the files
    ``attachments`` gives: the referral's PDF) and sends it; the message key (hence the
    Message-ID) is the delivery's, the same on every try. ``prepare`` completes the notice first
    (``bot.delivery.deeplinks.registration_links``: the deep link of a registration e-mail)."""
    async def send(notice: Notice) -> None:
        if prepare is not None:
            notice = await prepare(notice)
        files = await attachments(notice) if attachments is not None else []
        await mailer.send(notice.target, render_email(notice, files), message_key=f"kezek-{notice.delivery_id}")
    return send
