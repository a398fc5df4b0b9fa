"""E-mail: an SMTP sender (aiosmtplib) and, for the embedded default, a folder of ``.eml`` files.

Both take a finished subject and body; the words come from the bot layer (bot/notices.py).
A refused address is ``Undeliverable`` (no retry); a server that is down or answers 4xx is
``RetryLater`` (the delivery stays due)."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
import datetime as dt
from pathlib import Path
from typing import Protocol

from services.clock import Clock
from services.notifications import RetryLater, Undeliverable


class EmailSender(Protocol):
    async def send(self, to: str, subject: str, body: str, *, message_key: str) -> None: ...


def build_message(sender: str, to: str, subject: str, body: str, *, message_key: str,
                  at: dt.datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    domain = sender.rsplit("@", 1)[-1].strip(">") or "kezek.local"
    msg["Message-ID"] = make_msgid(idstring=re.sub(r"[^A-Za-z0-9.-]", "-", message_key), domain=domain)
    msg.set_content(body)
    return msg


class SmtpSender:
    def __init__(self, clock: Clock, host: str, port: int, sender: str, *, username: str = "",
                 password: str = "", starttls: bool | None = None, use_tls: bool = False,
                 timeout: float = 30.0) -> None:
        self.clock = clock
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.use_tls, self.timeout = starttls, use_tls, timeout

    async def send(self, to: str, subject: str, body: str, *, message_key: str) -> None:
        import aiosmtplib

        msg = build_message(self.sender, to, subject, body, message_key=message_key, at=self.clock.now())
        try:
            await aiosmtplib.send(
                msg, hostname=self.host, port=self.port, username=self.username or None,
                password=self.password or None, start_tls=self.starttls, use_tls=self.use_tls,
                timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise Undeliverable("recipient refused") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise Undeliverable(f"smtp {exc.code}") from exc
            raise RetryLater(60, f"smtp {exc.code}") from exc
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise RetryLater(60, type(exc).__name__) from exc


class FolderSender:
    """Writes each e-mail as ``<folder>/<message key>.eml`` (the embedded default: no server)."""

    def __init__(self, clock: Clock, folder: Path, sender: str = "Kezek <noreply@kezek.local>") -> None:
        self.clock = clock
        self.folder, self.sender = Path(folder), sender

    async def send(self, to: str, subject: str, body: str, *, message_key: str) -> None:
        msg = build_message(self.sender, to, subject, body, message_key=message_key, at=self.clock.now())
        name = re.sub(r"[^A-Za-z0-9._-]", "_", message_key) + ".eml"
        data = bytes(msg)

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / (name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(self.folder / name)  # whole or not at all

        await asyncio.to_thread(write)
