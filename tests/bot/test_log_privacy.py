"""No personal data in logs at any level: the engines hide bound values (also
in an error's text, which a handler may log), the drivers' value-carrying DEBUG lines stay off,
and a filter on the handlers masks what slips through. The whole bot at DEBUG:
tests/e2e/test_e2e_walk.py."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from bot import logsafe
from bot.config import Settings
from storage.db import Database
from storage.models import Application

IIN = "230315650441"
PHONES = ("+77011234567", "87011234567", "+7 701 123 45 67", "8 (701) 123-45-67")
EMAIL = "parent.one@example.kz"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CODE = "604218"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The root logger at DEBUG into a buffer, the way ``kezek run`` sets it up
    (``logsafe.install``); everything put back afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in logsafe.QUIET})
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter(logsafe.FORMAT))
    root.handlers = [handler]
    logsafe.install("DEBUG")
    try:
        yield buffer
    finally:
        logging.captureWarnings(False)
        root.setLevel(saved[0])
        root.handlers = saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def personal(text: str) -> list[str]:
    return [v for v in (IIN, *PHONES, EMAIL, TOKEN, CODE) if v in text]


def test_the_filter_masks_messages_arguments_tracebacks_and_warnings(debug_log: io.StringIO) -> None:
    log = logging.getLogger("some.library")
    log.debug("row %r", (IIN, PHONES[0], EMAIL))
    log.info("calling https://api.telegram.org/bot%s/sendMessage", TOKEN)
    log.debug('payload {"code": "%s", "phones": %s}', CODE, list(PHONES))
    try:
        raise ValueError(f"invalid input {IIN!r} for {EMAIL}")
    except ValueError:
        log.exception("failed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)
        warnings.warn(f"Update: {{'text': '{IIN}', 'phone': '{PHONES[1]}'}}", RuntimeWarning, stacklevel=1)
    out = debug_log.getvalue()
    assert personal(out) == [], out
    assert out.count("<number>") >= 3 and "<phone>" in out and "<e-mail>" in out and "<token>" in out
    assert '"code": "<code>"' in out and "ValueError" in out and "Traceback" in out


def test_numbers_that_are_not_personal_stay(debug_log: io.StringIO) -> None:
    logging.getLogger("kezek.bot").info("update 123456789 in 42 ms, application A00001, port 8080, 2026-09-07")
    out = debug_log.getvalue()
    assert "update 123456789 in 42 ms, application A00001, port 8080, 2026-09-07" in out


async def test_the_database_keeps_values_out_of_its_log_and_its_errors(
        db: Database, debug_log: io.StringIO) -> None:
    """SQLAlchemy's engine log and aiosqlite at DEBUG, and the text of a constraint error (which
    carried the statement's values, an IIN among them)."""
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)  # (as an operator debugging might)
    async with db.read() as session:
        assert (await session.execute(select(Application.id).where(Application.child_iin == IIN))).first() is None
        await session.execute(text("SELECT :iin, :email"), {"iin": IIN, "email": EMAIL})
    with pytest.raises(IntegrityError) as info:
        async with db.write() as session:
            await session.execute(text("INSERT INTO applications (number, child_iin) VALUES (:n, :iin)"),
                                  {"n": EMAIL, "iin": IIN})
    assert personal(str(info.value)) == [], str(info.value)
    out = debug_log.getvalue()
    assert "SELECT" in out  # (the engine did log at DEBUG)
    assert personal(out) == [], out


def test_the_log_level_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEZEK_LOG_LEVEL", raising=False)
    assert Settings(_env_file=None).log_level == "INFO"  # type: ignore[call-arg]
    monkeypatch.setenv("KEZEK_LOG_LEVEL", " debug")
    assert Settings(_env_file=None).log_level == "DEBUG"  # type: ignore[call-arg]
    monkeypatch.setenv("KEZEK_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="log_level"):
        Settings(_env_file=None)  # type: ignore[call-arg]
