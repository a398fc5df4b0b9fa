"""The whole walk of a parent, end to end: ``kezek run`` as a separate process talking over real
HTTP to the Bot API stand-in (tests/support/standin.py), on an SQLite file that the registry side (this
test, through the service facade) writes to at the same time.

/start → Қазақша → /link (number, IIN, the parent's own contact) → /status shows the number →
the registry publishes a seat → the bot's outbox sender pushes "your turn" with a button →
seats → preview → confirm → the referral → /status shows it; the e-mail copy lands in the mail
folder. The bot runs with a fixed clock (``kezek --now``) inside the claim window. A second
parent links by the code e-mailed to the application's address.

The bot logs at DEBUG (``KEZEK_LOG_LEVEL``) and its whole log, every library's lines included,
holds none of the IINs, phones, e-mail addresses, the one-time code or the bot token it handled;
the mail folder and its .eml files are the owner's only."""

from __future__ import annotations

import asyncio
import re
import stat
import sys
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from locales import gettext
from locales.formats import format_deadline
from services.clock import FrozenClock
from services.kezek import Kezek
from services.validation import mask_iin
from storage.db import Database
from storage.migrate import upgrade_async
from tests.support.standin import START_UP, TOKEN, BotApiStandIn, BotProcess, Call
from tests.support.world import World, almaty

CHAT = 7101
CHAT2 = 7102
NOW = almaty(2026, 9, 7, 10, 0)  # a Monday, inside the 09:00-20:00 window

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


def kk(msgid: str, **params: Any) -> str:
    return gettext("kk", msgid, **params)


async def eventually(probe: Any, bot: BotProcess, timeout: float = 20.0) -> Any:
    """``probe()`` once it returns something truthy (checked every 0.1 s, at most ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := probe()):
        assert bot.alive() is None, bot.alive()
        if loop.time() > deadline:
            raise TimeoutError(f"nothing within {timeout} s; the bot's log:\n{bot.log()}")
        await asyncio.sleep(0.1)
    return result


def has(fragment: str) -> Any:
    return lambda c: c.text is not None and fragment in c.text


async def test_a_parent_links_sees_the_number_gets_the_alert_and_claims(api: BotApiStandIn, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    await upgrade_async(url)
    db = Database(url)
    kz = Kezek(db, FrozenClock(NOW))
    world = await World(kz, FrozenClock(NOW)).setup()
    ahead, mine = world.row(), world.row()
    await world.apps(ahead, mine)
    mail = tmp_path / "mail"
    bot = await BotProcess(tmp_path / "bot.log", url, {
        "KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_MAIL_DIR": str(mail),
        "KEZEK_OUTBOX_IDLE_SECONDS": "0.2", "KEZEK_LOG_LEVEL": "DEBUG",
    }, args=["--now", NOW.isoformat()]).start()
    wait = {"alive": bot.alive}
    try:
        api.send_text(CHAT, "/start", language_code="ru")
        picker = await api.wait_for("sendMessage", lambda c: c.buttons(), timeout=START_UP, **wait)
        api.press(CHAT, picker.button("Қазақша")["callback_data"], picker)
        await api.wait_for("sendMessage", lambda c: c.text == kk(
            "Welcome to Kezek! Here you can follow your child's place in the kindergarten queue and "
            "get notices about seats. Use the menu below."), **wait)

        # Link with the parent's own contact.
        api.send_text(CHAT, kk("Link an application"))
        await api.wait_for("sendMessage", has(kk("Enter the application number as it is written in the "
                                                 "application. To stop, send /cancel.")), **wait)
        api.send_text(CHAT, mine["number"])
        await api.wait_for("sendMessage", has(kk("Enter the child's IIN (12 digits).")), **wait)
        api.send_text(CHAT, mine["child_iin"])
        await api.wait_for("sendMessage", lambda c: any(b.get("request_contact") for b in c.buttons()), **wait)
        api.send_contact(CHAT, mine["phone"].replace("+7", "8"), CHAT)
        await api.wait_for("sendMessage", has(mine["number"]), **wait)

        # The status: second in the queue.
        api.send_text(CHAT, "/status")
        card = await api.wait_for("sendMessage", has(kk("Queue number: {number}", number="2")), **wait)
        assert mine["number"] in card.text

        # The registry publishes two seats: the first goes to `ahead`, the second to us.
        since = api.mark()
        await world.publish(2, "KG1")
        alert = await api.wait_for("sendMessage", lambda c: c.text and mine["number"] in c.text and any(
            b.get("callback_data", "").startswith("seats:") for b in c.buttons()), since=since, timeout=30, **wait)
        assert kk("Your turn has come! A seat at {kindergarten} is offered to {application}. Claim it by "
                  "{until}, or it goes to everyone.", kindergarten="№1 бөбекжай-бақша",
                  application=kk("application {number} (child's IIN {iin})", number=mine["number"],
                                 iin=mask_iin(mine["child_iin"])),
                  until=format_deadline("kk", almaty(2026, 9, 7, 20, 0), zone="local")) == alert.text
        assert alert.chat_id == CHAT
        assert kk("Choose a seat") in [b["text"] for b in alert.buttons()]

        # Claim: seats → preview → confirm.
        api.press(CHAT, alert.button(kk("Choose a seat"))["callback_data"], alert)
        listing: Call = await api.wait_for("sendMessage", lambda c: c.buttons() and "claim:" in
                                           c.buttons()[0].get("callback_data", ""), **wait)
        api.press(CHAT, listing.buttons()[0]["callback_data"], listing)
        preview = await api.wait_for("editMessageText", has(kk("Confirm the claim?")), **wait)
        api.press(CHAT, preview.button(kk("Confirm"))["callback_data"], listing)
        done = await api.wait_for("editMessageText", has(mine["number"]), **wait)
        assert "№1 бөбекжай-бақша" in done.text

        # The referral is in the registry and on the status card.
        view = await kz.queue_view(mine["number"])
        assert view.state == "referred" and view.referral is not None
        assert view.referral.confirmed_by == f"telegram:{CHAT}"
        api.send_text(CHAT, "/status")
        await api.wait_for("sendMessage", has(mine["number"]), **wait)

        # The e-mail copy of "your turn" went to the application's address, in both languages.
        def copies() -> list[Any]:
            found = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in mail.glob("*.eml")]
            return [m for m in found if m["To"] == mine["email"]]

        mails = await eventually(copies, bot)
        assert mails, bot.log()
        assert any(mine["number"] in m.get_body(("plain",)).get_content() for m in mails)

        # A second parent links `ahead` by the code e-mailed to its address.
        api.send_text(CHAT2, "/link", language_code="ru")
        await api.wait_for("sendMessage", lambda c: c.chat_id == CHAT2, **wait)
        api.send_text(CHAT2, ahead["number"])
        await api.wait_for("sendMessage", lambda c: c.chat_id == CHAT2 and gettext(
            "ru", "Enter the child's IIN (12 digits).") in (c.text or ""), **wait)
        api.send_text(CHAT2, ahead["child_iin"])
        offer = await api.wait_for("sendMessage", lambda c: c.chat_id == CHAT2 and any(
            b.get("callback_data") for b in c.buttons()), **wait)
        api.press(CHAT2, offer.buttons()[0]["callback_data"], offer)

        def code_mail() -> str | None:
            for path in mail.glob("*.eml"):
                msg = message_from_bytes(path.read_bytes(), policy=policy.default)
                if msg["To"] == ahead["email"] and gettext("ru", "Your code") in msg["Subject"]:
                    found = re.search(r"(?<!\w)\d{6}(?!\w)", msg.get_body(("plain",)).get_content())
                    if found:
                        return found.group(0)
            return None

        link_code = await eventually(code_mail, bot)
        since = api.mark()
        api.send_text(CHAT2, link_code)
        await api.wait_for("sendMessage", lambda c: c.chat_id == CHAT2 and ahead["number"] in (c.text or ""),
                           since=since, **wait)

        # The e-mails, with their link tokens and codes, are the owner's only.
        assert stat.S_IMODE(mail.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in mail.iterdir()} == {0o600}
    finally:
        code = await bot.stop()
        await db.dispose()
    output = bot.log(200_000)
    assert code == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    # No personal data in the log, at DEBUG, from any logger (aiogram, aiohttp, aiosqlite, SQLAlchemy...).
    assert " DEBUG " in output  # (the level was DEBUG indeed)
    for row in (mine, ahead):
        phone = row["phone"]
        for value in (row["child_iin"], phone, "8" + phone[2:], phone[1:], row["email"]):
            assert value not in output, value
    assert link_code not in output and TOKEN not in output
