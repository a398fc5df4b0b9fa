"""The kindergarten's side end to end: ``kezek run`` as a separate process with the Bot API
stand-in and the public page. A parent's referral arrives in the chat as a PDF; its QR code,
decoded from the PDF the bot sent, opens the page (genuine, valid); the page's "Open in
Telegram" gives the staff member's bot the code; the staff member, invited by the operator,
admits the child in one tap, and the parent's chat is told within seconds. A stranger holding
the same code learns nothing in the bot."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from handlers.callbacks import StaffCallback
from locales import gettext
from locales.errors import error_text
from services.clock import FrozenClock
from services.errors import NotStaff
from services.kezek import Kezek
from storage.db import Database
from storage.migrate import upgrade_async
from tests.support.documents import qr_tokens
from tests.support.pgcluster import free_port
from tests.support.standin import START_UP, TOKEN, BotApiStandIn, BotProcess
from tests.support.world import World, almaty

PARENT, STAFF, STRANGER = 7201, 7202, 7203
NOW = almaty(2026, 9, 7, 10, 0)  # a Monday, inside the claim window

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


async def test_scanned_checked_and_admitted_in_one_tap(api: BotApiStandIn, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    await upgrade_async(url)
    db = Database(url)
    kz = Kezek(db, FrozenClock(NOW))
    world = await World(kz, FrozenClock(NOW)).setup()
    row = world.row()
    row["child_name"] = "Абенова Айсулу"
    [number] = await world.apps(row)
    await kz.link_by_contact(PARENT, number, row["child_iin"], row["phone"], PARENT, PARENT)
    await kz.set_chat_language(PARENT, "kk")
    published = await world.publish(1, "KG1")
    [ref] = await kz.claim(number, next(s for _, s, n in published.offers if n == number),
                           confirmed_by=f"telegram:{PARENT}")
    port = free_port()
    bot = await BotProcess(tmp_path / "bot.log", url, {
        "KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_MAIL_DIR": str(tmp_path / "mail"),
        "KEZEK_OUTBOX_IDLE_SECONDS": "0.2", "KEZEK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "KEZEK_PAGE_PORT": str(port)}, args=["--now", NOW.isoformat()]).start()
    wait = {"alive": bot.alive}
    try:
        # The parent's chat gets the referral as a PDF; its QR code holds the page's address.
        sent = await api.wait_for("sendDocument", lambda c: c.chat_id == PARENT, timeout=START_UP, **wait)
        [address] = qr_tokens(sent.params["document"].content)
        assert address.startswith(f"http://127.0.0.1:{port}/r/")
        async with aiohttp.ClientSession() as http, http.get(address, headers={"Accept-Language": "kk"}) as resp:
            page = await resp.text()
        assert resp.status == 200 and gettext("kk", "Genuine referral: valid") in html.unescape(page)
        assert "Абенова" not in page and row["child_iin"] not in page
        link = re.search(r'href="(https://t\.me/kezek_bot\?start=[^"]+)"', page)
        assert link, page
        code = parse_qs(urlsplit(html.unescape(link[1])).query)["start"][0]

        # The operator invites the staff member, who opens the link, then the code from the page.
        invitation = await kz.invite_staff("KG1")
        api.send_text(STAFF, f"/start {invitation.token}")
        await api.wait_for("sendMessage", lambda c: c.chat_id == STAFF and "/desk" in (c.text or ""), **wait)
        api.send_text(STAFF, f"/start {code}")
        card = await api.wait_for("sendMessage", lambda c: c.chat_id == STAFF and c.buttons(), **wait)
        assert "Абенова Айсулу" in card.text

        # One tap; the parent's chat is told.
        since = api.mark()
        api.press(STAFF, StaffCallback(ref=ref.id, act="a").pack(), card)
        told = await api.wait_for("sendMessage", lambda c: c.chat_id == PARENT and number in (c.text or ""),
                                  since=since, timeout=30, **wait)
        assert "№1 бөбекжай-бақша" in told.text
        assert (await kz.queue_view(number)).state == "admitted"

        # Someone holding only the QR code: nothing more in the bot.
        api.send_text(STRANGER, f"/start {code}")
        refused = await api.wait_for("sendMessage", lambda c: c.chat_id == STRANGER, **wait)
        assert refused.text == error_text("ru", NotStaff()) and not refused.buttons()
    finally:
        code_ = await bot.stop()
        await db.dispose()
    assert code_ == 0, bot.log()
