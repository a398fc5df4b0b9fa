"""E-mail: an SMTP sender (aiosmtplib) and, for the embedded default, a folder of ``.eml`` files.

Both take a finished :class:`EmailContent` (subject, plain text, HTML, files); the words come from
the bot layer (bot/delivery/notices.py). Each e-mail is ``multipart/alternative`` (text, then HTML; inside
``multipart/mixed`` with the files when there are any, e.g. the referral's PDF) with a
``Message-ID`` derived from the delivery's key and a ``Date`` from the clock.

How an SMTP failure is recorded (services/notifications.py turns these into the delivery's state):

* the server is unreachable, times out or answers 421 (closing), or it refuses our login, our
  sender address or a needed extension (``MailerMisconfigured``, logged as an error): the server's
  trouble, not the delivery's. ``RetryLater(flood=True)``: the try does not count against the
  delivery's limit, so no copy is lost however long an outage or a wrong password lasts; the wait
  grows with the outage (as long as it has lasted so far, between 30 seconds and 15 minutes:
  ``OUTAGE_WAIT``);
* a 4xx about this message or this recipient (mailbox busy, greylisting): ``RetryLater`` with the
  outbox's backoff and its limit of tries;
* a permanent 5xx about this message or this recipient: ``Undeliverable`` with the server's code
  and words (``deliveries.last_error``), never retried.

Two waits can be changed through the environment of the process that sends (read when an
``SmtpSender`` is made; the defaults are the production values, and the fault tests shorten them
so that an outage scenario takes seconds rather than minutes):

* ``KEZEK_SMTP_TIMEOUT``: seconds to wait for the server at each step of a send (default 30);
* ``KEZEK_SMTP_OUTAGE_WAIT``: ``MIN`` or ``MIN,MAX`` seconds, the bounds of the wait after a
  server-side failure (default ``30,900``; the outage error is logged again every MAX seconds).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry, UniqueAddressHeader, UniqueUnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from services.clock import Clock
from services.notifications import Attachment, RetryLater, Undeliverable
from services.validation import mask_email
from storage.private_files import private_dir, write_private

log = logging.getLogger("kezek.email")

OUTAGE_WAIT = (30.0, 900.0)  # the wait after a server-side failure: at least, at most (seconds)
SMTP_TIMEOUT = 30.0  # seconds for the server to answer each step of a send


def _positive_seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}: a positive number of seconds, not {text!r}")
    return value


def smtp_timeout_from_env() -> float:
    """``KEZEK_SMTP_TIMEOUT`` (seconds), else ``SMTP_TIMEOUT``."""
    text = os.environ.get("KEZEK_SMTP_TIMEOUT", "").strip()
    return _positive_seconds("KEZEK_SMTP_TIMEOUT", text) if text else SMTP_TIMEOUT


def outage_wait_from_env() -> tuple[float, float]:
    """``KEZEK_SMTP_OUTAGE_WAIT`` (``MIN`` or ``MIN,MAX`` seconds; MAX defaults to OUTAGE_WAIT's and
    is at least MIN), else ``OUTAGE_WAIT``."""
    text = os.environ.get("KEZEK_SMTP_OUTAGE_WAIT", "").strip()
    if not text:
        return OUTAGE_WAIT
    low, _, high = text.partition(",")
    least = _positive_seconds("KEZEK_SMTP_OUTAGE_WAIT", low.strip())
    most = _positive_seconds("KEZEK_SMTP_OUTAGE_WAIT", high.strip()) if high.strip() else OUTAGE_WAIT[1]
    return least, max(least, most)


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()


class MailerMisconfigured(RetryLater):
    """The SMTP settings are wrong (login, sender address, TLS): retried until fixed, logged as an error."""


class EmailSender(Protocol):
    async def send(self, to: str, content: EmailContent, *, message_key: str) -> None: ...


# --- headers that survive folding ----------------------------------------------------------------
# A non-ASCII subject or display name goes out as RFC 2047 encoded words, several when it is long.
# Python's own folder (3.11; fixed upstream in gh-144156) can end an encoded word just before a
# space and put that space between the words as folding white space, which a reader must drop
# (RFC 2047 section 6.2): "поставлено в очередь" arrived as "поставленов очередь". Here the
# standard library's RFC 2047 encoder (``email.header.Header``) writes them instead: every space
# of the text is inside an encoded word, and the words are separated by folding white space only.


def _encoded_words(text: str, name: str, policy: EmailPolicy) -> str:
    """``text`` as UTF-8 encoded words of at most 75 characters, one a line (the header's name
    counted on the first)."""
    return Header(text, "utf-8", maxlinelen=76, header_name=name).encode(linesep=policy.linesep)


# BaseHeader is what HeaderRegistry mixes into every header class: named as a base here, it changes
# nothing in the method order, and the types know these classes as headers (typeshed declares
# max_count and init one way on the mixins and another on BaseHeader: [misc]).
class _WholeSubject(UniqueUnstructuredHeader, BaseHeader):  # type: ignore[misc]
    def fold(self, *, policy: EmailPolicy) -> str:  # type: ignore[override]  # (only EmailPolicy has utf8)
        text = str(self)
        if policy.utf8 or text.isascii():  # (an SMTPUTF8 message carries the text as it is)
            return super().fold(policy=policy)
        return f"{self.name}: {_encoded_words(text, self.name, policy)}{policy.linesep}"


class _WholeSender(UniqueAddressHeader, BaseHeader):  # type: ignore[misc]
    def fold(self, *, policy: EmailPolicy) -> str:  # type: ignore[override]  # (only EmailPolicy has utf8)
        addresses = self.addresses
        if policy.utf8 or len(addresses) != 1 or addresses[0].display_name.isascii() \
                or not addresses[0].addr_spec.isascii():
            return super().fold(policy=policy)
        address = addresses[0]
        words = _encoded_words(address.display_name, self.name, policy)
        last = words.rsplit(policy.linesep, 1)[-1]
        gap = " " if len(last) + len(address.addr_spec) + 3 <= 78 else policy.linesep + " "
        return f"{self.name}: {words}{gap}<{address.addr_spec}>{policy.linesep}"


def _mail_policy() -> EmailPolicy[EmailMessage]:
    headers = HeaderRegistry()
    headers.map_to_type("subject", _WholeSubject)
    headers.map_to_type("from", _WholeSender)
    return default_policy.clone(header_factory=headers)


# The policy of every message built here; the header objects fold themselves whatever policy a
# generator is given later (aiosmtplib flattens with ``email.policy.SMTP``).
MAIL_POLICY = _mail_policy()


def build_message(sender: str, to: str, content: EmailContent, *, message_key: str,
                  at: dt.datetime) -> EmailMessage:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = content.subject
    msg["Date"] = format_datetime(at)
    domain = sender.rsplit("@", 1)[-1].strip(">") or "kezek.local"
    msg["Message-ID"] = make_msgid(idstring=re.sub(r"[^A-Za-z0-9.-]", "-", message_key), domain=domain)
    msg["Content-Language"] = "kk, ru"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a notice
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    for file in content.attachments:  # the message becomes multipart/mixed: the texts, then the files
        maintype, _, subtype = file.content_type.partition("/")
        msg.add_attachment(file.content, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=file.filename)
    return msg


_ADDRESS = re.compile(r"[^\s<>\"'@]+@[^\s<>\"']+")


def _smtp_reason(code: int, message: str) -> str:
    """The server's code and words, with any address in them masked (they go to the operators'
    outbox report and the log)."""
    words = _ADDRESS.sub(lambda m: mask_email(m.group(0)), " ".join(str(message).split()))
    return f"smtp {code}: {words}"[:200] if words else f"smtp {code}"


class SmtpSender:
    def __init__(self, clock: Clock, host: str, port: int, sender: str, *, username: str = "",
                 password: str = "", starttls: bool | None = None, use_tls: bool = False,
                 timeout: float | None = None, outage_wait: tuple[float, float] | None = None) -> None:
        self.clock = clock
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.use_tls = starttls, use_tls
        # Not given: from the environment (KEZEK_SMTP_TIMEOUT, KEZEK_SMTP_OUTAGE_WAIT), else the defaults.
        self.timeout = timeout if timeout is not None else smtp_timeout_from_env()
        self.outage_wait = outage_wait if outage_wait is not None else outage_wait_from_env()
        self._trouble_since: dt.datetime | None = None  # when the server's current trouble began
        self._logged_at: dt.datetime | None = None

    def _server_trouble(self, reason: str, *, misconfigured: bool = False) -> RetryLater:
        """A failure that is the server's or the settings', not this delivery's: wait as long as the
        trouble has lasted (within ``self.outage_wait``: OUTAGE_WAIT by default) and do not count the try."""
        now = self.clock.now()
        since = self._trouble_since = self._trouble_since or now
        least, most = self.outage_wait
        wait = min(max((now - since).total_seconds(), least), most)
        if self._logged_at is None or (now - self._logged_at).total_seconds() >= most:
            self._logged_at = now  # once when it starts, then every 15 minutes while it lasts
            hint = "; check the KEZEK_SMTP_* settings" if misconfigured else ""
            log.error("SMTP server %s:%s: %s%s (e-mails wait and are retried)", self.host, self.port,
                      reason, hint)
        error = MailerMisconfigured if misconfigured else RetryLater
        return error(wait, reason[:200], flood=True)

    def _fine(self) -> None:
        if self._trouble_since is not None:
            log.info("SMTP server %s:%s accepts e-mails again", self.host, self.port)
        self._trouble_since = self._logged_at = None

    async def send(self, to: str, content: EmailContent, *, message_key: str) -> None:
        import aiosmtplib

        msg = build_message(self.sender, to, content, message_key=message_key, at=self.clock.now())
        try:
            await aiosmtplib.send(
                msg, hostname=self.host, port=self.port, username=self.username or None,
                password=self.password or None, start_tls=self.starttls, use_tls=self.use_tls,
                timeout=self.timeout)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise self._server_trouble(f"login refused ({_smtp_reason(exc.code, exc.message)})",
                                       misconfigured=True) from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            if 400 <= exc.code < 500:
                raise self._server_trouble(_smtp_reason(exc.code, exc.message)) from exc
            # 530 "authentication required", 553 "sender not allowed": the settings, not the parent.
            raise self._server_trouble(f"sender refused ({_smtp_reason(exc.code, exc.message)})",
                                       misconfigured=True) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise self._server_trouble(f"not supported by the server ({exc.message})", misconfigured=True) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._fine()
            refusals = exc.recipients or []
            permanent = [r for r in refusals if 500 <= r.code < 600]
            if permanent or not refusals:
                first = permanent[0] if permanent else None
                raise Undeliverable("recipient refused: " + (
                    _smtp_reason(first.code, first.message) if first else "no reason given")) from exc
            raise RetryLater(None, _smtp_reason(refusals[0].code, refusals[0].message)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or isinstance(exc, (aiosmtplib.SMTPConnectResponseError, aiosmtplib.SMTPHeloError)):
                raise self._server_trouble(_smtp_reason(exc.code, exc.message)) from exc
            self._fine()
            if 500 <= exc.code < 600:
                raise Undeliverable(_smtp_reason(exc.code, exc.message)) from exc
            raise RetryLater(None, _smtp_reason(exc.code, exc.message)) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise self._server_trouble(f"smtp server unreachable: {type(exc).__name__}") from exc
        self._fine()


class FolderSender:
    """Writes each e-mail as ``<folder>/<message key>.eml`` (the embedded default: no server),
    readable by the owner only (``storage.private_files``: the folder 0700, the files 0600 from
    the first byte): a registration e-mail carries a one-tap link token, a code e-mail the code."""

    def __init__(self, clock: Clock, folder: Path, sender: str = "Kezek <noreply@kezek.local>") -> None:
        self.clock = clock
        self.folder, self.sender = Path(folder), sender

    async def send(self, to: str, content: EmailContent, *, message_key: str) -> None:
        msg = build_message(self.sender, to, content, message_key=message_key, at=self.clock.now())
        name = re.sub(r"[^A-Za-z0-9._-]", "_", message_key) + ".eml"
        data = bytes(msg)

        def write() -> None:
            private_dir(self.folder, narrow=True)  # (an older version's 0755 folder narrowed too)
            write_private(self.folder / name, data)  # whole or not at all

        await asyncio.to_thread(write)
