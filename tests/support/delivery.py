"""The delivery side's fakes: a notice channel that records and fails as told, a send policy without
pacing, and a real SMTP server on loopback (aiosmtpd) that keeps what it accepts."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from typing import Any

from bot.delivery.sender import SendPolicy
from services.notifications import Notice
from services.pacing import Pacer


class Port:
    """A channel that records what it was asked to send and fails as told."""

    def __init__(self, *errors: BaseException | None) -> None:
        self.errors = list(errors)
        self.sent: list[Notice] = []

    async def __call__(self, notice: Notice) -> None:
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        self.sent.append(notice)


def unlimited(batch: int = 500, concurrency: int = 8) -> SendPolicy:
    """Sending as fast as it goes: no pacing of Telegram's limits."""
    return SendPolicy(batch=batch, concurrency=concurrency, pacer=Pacer(0, 0))


class Inbox:
    """An aiosmtpd handler that keeps what it accepts and refuses as the test tells it to."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.rcpt_answer: dict[str, str] = {}  # address domain -> SMTP answer to RCPT
        self.data_answer: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        answer = self.rcpt_answer.get(address.rsplit("@", 1)[-1])
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answer:
            return self.data_answer
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that the test can stop and start again on the same port."""

    def __init__(self, port: int, **options: Any) -> None:
        self.port, self.options = port, options
        self.inbox = Inbox()
        self.controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
