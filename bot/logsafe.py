"""Logging without personal data, at every level (``KEZEK_LOG_LEVEL``).

Kezek's own code logs kinds, counts and code locations, never values. Three things keep the
libraries' lines clean too:

* the database engines hide bound parameters (``hide_parameters=True`` in ``storage.db``): an SQL
  log line or an error's text says ``[parameters hidden]`` instead of an IIN;
* loggers whose debug lines carry the values themselves stay at INFO whatever the level
  (``QUIET``: aiosqlite logs each call it hands to its thread with the SQL's arguments;
  SQLAlchemy's engine logs the rows it reads at DEBUG);
* a filter on the handlers (``Redact``), the safety net: IIN-like 12-digit numbers, phone numbers,
  e-mail addresses, bot tokens and one-time codes next to the word "code" are masked in every
  message, its arguments and its traceback, from any logger (and Python's warnings, which go
  through logging: aiogram warns with a whole update's text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers that stay at INFO or above whatever KEZEK_LOG_LEVEL says (their DEBUG lines carry values).
QUIET = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "sqlalchemy.orm", "asyncpg",
         "aiohttp.client", "multipart", "PIL")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A bot token (123456789:AA...), alone or in a Bot API URL (/bot123456789:AA.../sendMessage).
    (re.compile(r"(?<!\d)\d{5,16}:[A-Za-z0-9_-]{30,}"), "<token>"),
    # An e-mail address.
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "<e-mail>"),
    # A one-time code near the word "code" (a payload's "code": "123456", a rendered e-mail).
    (re.compile(r"(?i)((?<![A-Za-z])(?:code|codes|код\w*)(?![A-Za-z])[^\n]{0,80}?)(?<!\w)\d{4,8}(?!\w)"),
     r"\1<code>"),
    # An IIN (12 digits) or any other number of 12 to 15 digits.
    (re.compile(r"(?<!\d)\d{12,15}(?!\d)"), "<number>"),
    # A phone: +7 / 8 / 7 and ten digits, with or without spaces, brackets and dashes; or any
    # international number.
    (re.compile(r"(?<![\w+])(?:\+\s?7|8|7)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\d)"), "<phone>"),
    (re.compile(r"(?<![\w+])\+\d[\d\s()-]{7,18}\d(?!\d)"), "<phone>"),
)


def redact(text: str) -> str:
    """``text`` with personal data masked (see the module's docstring)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Masks personal data in a record before any handler formats it: the message with its
    arguments, the traceback and the stack (the record is changed in place, so every handler after
    this one sees the masked text)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not fit its format
            message = f"{record.msg!s} (arguments left out)"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def protect(handlers: Iterable[logging.Handler]) -> None:
    """Put ``Redact`` on ``handlers`` (once each)."""
    for handler in handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact())


def install(level: str | int | None = None) -> None:
    """Logging for a kezek process: ``level`` (a name such as "DEBUG"; None: leave the root's
    handlers and level as they are, only protect them), the root's handlers and Python's last-resort
    handler behind ``Redact``, the value-carrying libraries held at INFO, warnings through logging."""
    if level is not None:
        numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
        if not isinstance(numeric, int):
            raise ValueError(f"not a logging level: {level!r}")
        logging.basicConfig(level=numeric, format=FORMAT)
        logging.getLogger().setLevel(numeric)
    for name in QUIET:
        quiet = logging.getLogger(name)
        if quiet.getEffectiveLevel() < logging.INFO:
            quiet.setLevel(logging.INFO)
    logging.captureWarnings(True)
    protect(logging.getLogger().handlers)
    if logging.lastResort is not None:
        protect([logging.lastResort])
