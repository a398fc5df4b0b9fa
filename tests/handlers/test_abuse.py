"""Abuse, in every state of every dialogue: unexpected message types, very long and odd text, and
forged or malformed button data. Each gets a clear answer in the chat's language (never the
generic apology of a crash) and changes nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.fsm.state import State
from aiogram.methods import AnswerCallbackQuery, SendMessage, TelegramMethod
from aiogram.types import Contact, Document, Location, PhotoSize, Sticker
from sqlalchemy import func, select

from handlers.callbacks import (
    ClaimCallback,
    DocsCallback,
    HistoryCallback,
    ReferralPdfCallback,
    SeatsCallback,
    UnlinkCallback,
)
from locales import gettext
from services.kezek import Kezek
from storage.models import (
    Application,
    Chat,
    ChatLink,
    Delivery,
    LinkCode,
    Offer,
    OutboxMessage,
    QueueLook,
    Referral,
    Seat,
)
from tests.support.telegram import CHAT_ID, SORRY, STATES, Harness
from tests.support.world import World

ODD: dict[str, dict[str, Any]] = {
    "sticker": {"sticker": Sticker(file_id="s", file_unique_id="su", type="regular", width=512, height=512,
                                   is_animated=False, is_video=False)},
    "photo": {"photo": [PhotoSize(file_id="p", file_unique_id="pu", width=90, height=90)]},
    "document": {"document": Document(file_id="d", file_unique_id="du", file_name="iin.pdf")},
    "location": {"location": Location(latitude=43.238, longitude=76.945)},
    "someone else's contact": {"contact": Contact(phone_number="+77010000000", first_name="X", user_id=999)},
    "long text": {"text": "Ә" * 4096},
    "odd text": {"text": "'; DROP TABLE applications; -- \u202e\u0000 <b>x</b> {number} %s"},
    "unknown command": {"text": "/frobnicate " + "x" * 500},
}

TABLES = (Application, Chat, ChatLink, Delivery, LinkCode, Offer, OutboxMessage, QueueLook, Referral, Seat)


async def snapshot(kz: Kezek) -> dict[str, int]:
    async with kz.reading() as ctx:
        return {t.__tablename__: int((await ctx.session.execute(select(func.count()).select_from(t))).scalar_one())
                for t in TABLES}


def replies(calls: list[TelegramMethod[Any]]) -> list[str]:
    return [c.text for c in calls if isinstance(c, SendMessage)] + \
        [c.text or "" for c in calls if isinstance(c, AnswerCallbackQuery)]


@pytest.fixture
async def linked(kz: Kezek, world: World) -> dict[str, Any]:
    mine, other = world.row(), world.row()
    await world.apps(mine, other)
    await world.publish(1, "KG1")  # offered to `mine`
    target = await kz.link_by_contact(CHAT_ID, mine["number"], mine["child_iin"], mine["phone"], CHAT_ID, CHAT_ID)
    other_target = await kz.link_by_contact(4004, other["number"], other["child_iin"], other["phone"], 4004, 4004)
    await kz.set_chat_language(CHAT_ID, "kk")
    return {"mine": target.application_id, "other": other_target.application_id}


async def enter(tg: Harness, state: State | None) -> None:
    ctx = tg.dp.fsm.get_context(bot=tg.bot, chat_id=CHAT_ID, user_id=CHAT_ID)
    await ctx.set_state(state)
    await ctx.update_data(number="A00001", iin="000000000000")


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("kind", list(ODD))
async def test_odd_messages_in_every_state(tg: Harness, kz: Kezek, linked: dict[str, Any], state: str,
                                           kind: str) -> None:
    await enter(tg, STATES[state])
    before = await snapshot(kz)
    calls = await tg.send("kk", **ODD[kind])
    texts = replies(calls)
    assert texts, "no answer at all"
    assert all(t and t != gettext("kk", SORRY) for t in texts), texts
    # (A failed proof is counted in link_attempts, not compared here: that is the lock-out working.)
    assert await snapshot(kz) == before


FORGED = [
    "claim:abc:1:c", "claim:1:2:z", "claim:-5:-5:c", "seats:", "seats:99999999999999999999999",
    "hist:99999999999999999999", "unl:yes:-99999999999999999999", "hist:x", "docs:p:99999999999999999999",
    "docs:zz:1", "docs:h:",
    "unl:1:2:3:4", "ntc:moves:7", "stg:nonsense", "lang:en", "link:email", "x" * 64, "", ":", "claim:::",
]


@pytest.mark.parametrize("data", FORGED)
async def test_malformed_button_data(tg: Harness, kz: Kezek, linked: dict[str, Any], data: str) -> None:
    before = await snapshot(kz)
    calls = await tg.press(data, language_code="kk")
    texts = replies(calls)
    assert texts and all(t and t != gettext("kk", SORRY) for t in texts), texts
    assert await snapshot(kz) == before


async def test_buttons_for_another_chats_application(tg: Harness, kz: Kezek, linked: dict[str, Any]) -> None:
    other = linked["other"]
    before = await snapshot(kz)
    async with kz.reading() as ctx:
        seat = (await ctx.session.execute(select(Seat.id))).scalars().first()
    for data in (SeatsCallback(app=other).pack(), ClaimCallback(app=other, seat=seat, step="p").pack(),
                 ClaimCallback(app=other, seat=seat, step="c").pack(), HistoryCallback(app=other).pack(),
                 ReferralPdfCallback(app=other).pack(),
                 DocsCallback(action="h", app=other).pack(), DocsCallback(action="p", app=other).pack(),
                 UnlinkCallback(action="ask", app_id=other).pack(), UnlinkCallback(action="yes", app_id=other).pack()):
        calls = await tg.press(data, language_code="kk")
        [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
        assert answer.show_alert and answer.text
        assert not [c for c in calls if isinstance(c, SendMessage)]
    assert await snapshot(kz) == before


async def test_huge_ids_on_own_application(tg: Harness, kz: Kezek, linked: dict[str, Any]) -> None:
    before = await snapshot(kz)
    for step in ("p", "c"):
        calls = await tg.press(ClaimCallback(app=linked["mine"], seat=2**70, step=step).pack(), language_code="kk")
        [answer] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
        assert answer.show_alert and answer.text != gettext("kk", SORRY)
    assert await snapshot(kz) == before
