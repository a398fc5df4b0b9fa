"""/link: linking a chat to an application (services.linking through the facade, and the dialogue
through the real Dispatcher on the mocked Bot of tests/support/telegram.py)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import (
    Contact,
    InlineKeyboardMarkup,
    PhotoSize,
    ReplyKeyboardMarkup,
    Sticker,
)
from sqlalchemy import select

from handlers.link import locked_text
from locales import gettext
from services.clock import FrozenClock
from services.errors import LinkFailed, LinkLocked
from services.kezek import Kezek
from services.validation import make_iin
from storage.models import AuditEntry, ChatLink, LinkCode
from tests.support.telegram import CHAT_ID, OTHER_CHAT, Harness, sent, texts
from tests.support.world import World, links, one_app, outbox_codes


async def fail_once(kz: Kezek, row: dict[str, Any], chat_id: int = CHAT_ID) -> BaseException:
    with pytest.raises((LinkFailed, LinkLocked)) as info:
        await kz.check_link_application(chat_id, "NOPE-1", row["child_iin"])
    return info.value


# --- services ----------------------------------------------------------------------------------------

async def test_link_by_contact(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    target = await kz.check_link_application(CHAT_ID, row["number"], row["child_iin"])
    assert target.number == row["number"] and row["child_iin"] not in target.child_iin_masked
    phone = row["phone"].replace("+7", "8 ")  # as a Telegram client may send it
    target = await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], phone, CHAT_ID, CHAT_ID)
    assert target.number == row["number"]
    # Idempotent, and a second parent may link the same application from another chat.
    await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], CHAT_ID, CHAT_ID)
    await kz.link_by_contact(OTHER_CHAT, row["number"], row["child_iin"], row["phone"], OTHER_CHAT, OTHER_CHAT)
    assert await links(kz) == [row["number"]]
    assert await links(kz, OTHER_CHAT) == [row["number"]]
    async with kz.reading() as ctx:
        rows = (await ctx.session.execute(select(ChatLink))).scalars().all()
        audit = (await ctx.session.execute(select(AuditEntry).where(AuditEntry.action == "link"))).scalars().all()
    assert {(r.chat_id, r.method) for r in rows} == {(CHAT_ID, "contact"), (OTHER_CHAT, "contact")}
    assert [a.data["chat_id"] for a in audit] == [CHAT_ID, OTHER_CHAT]


async def test_someone_elses_contact_is_refused(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    with pytest.raises(LinkFailed):
        await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], 777, CHAT_ID)
    with pytest.raises(LinkFailed):
        await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], None, CHAT_ID)
    assert await links(kz) == []


async def test_wrong_phone_is_refused(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    with pytest.raises(LinkFailed):
        await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], "+77019999999", CHAT_ID, CHAT_ID)
    with pytest.raises(LinkFailed):
        await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], "not a phone", CHAT_ID, CHAT_ID)
    assert await links(kz) == []


async def test_unknown_number_and_wrong_iin_are_indistinguishable(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    other_iin = make_iin(dt.date(2023, 3, 15), 999)
    errors = []
    for number, iin in [("A99999", row["child_iin"]), (row["number"], other_iin),
                        (row["number"], "123"), ("", "")]:
        with pytest.raises(LinkFailed) as info:
            await kz.check_link_application(CHAT_ID, number, iin)
        errors.append((type(info.value), info.value.code, repr(info.value.params), str(info.value),
                       info.value.__context__ is None, info.value.__cause__ is None))
    assert len(set(errors)) == 1 and errors[0][-2:] == (True, True)
    assert await links(kz) == []


async def test_five_failures_lock_for_an_hour(kz: Kezek, world: World, clock: FrozenClock) -> None:
    row = await one_app(world)
    for _ in range(4):
        assert isinstance(await fail_once(kz, row), LinkFailed)
        clock.advance(dt.timedelta(minutes=1))
    fifth_at = clock.now()
    locked = await fail_once(kz, row)
    assert isinstance(locked, LinkLocked)
    assert locked.params["until"] == fifth_at - dt.timedelta(minutes=4) + dt.timedelta(hours=1)
    # Even the right data is refused, and other chats are not affected.
    with pytest.raises(LinkLocked):
        await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], CHAT_ID, CHAT_ID)
    await kz.check_link_application(OTHER_CHAT, row["number"], row["child_iin"])
    assert await kz.link_locked_until(CHAT_ID) == locked.params["until"]
    clock.advance(dt.timedelta(minutes=50))
    with pytest.raises(LinkLocked):
        await kz.check_link_application(CHAT_ID, row["number"], row["child_iin"])
    clock.advance(dt.timedelta(minutes=10))
    assert await kz.link_locked_until(CHAT_ID) is None
    await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], CHAT_ID, CHAT_ID)
    assert await links(kz) == [row["number"]]


def wrong_iin(n: int) -> str:
    """A valid IIN that belongs to no application of the world (the world numbers its children 1, 2, ...)."""
    return make_iin(dt.date(2023, 3, 15), 900 + n)


async def test_relinking_ones_own_application_does_not_reset_the_lock_out(kz: Kezek, world: World) -> None:
    """A chat that owns A guesses B's IIN four times, re-links A with its own contact,
    and again: the re-link is answered "already linked", counts neither way, and the fifth wrong
    guess locks the chat; the right IIN of B then gets the lock-out, never B's masked e-mail."""
    a, b = world.row(), world.row()
    await world.apps(a, b)
    await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], CHAT_ID, CHAT_ID)
    for i in range(4):
        with pytest.raises(LinkFailed):
            await kz.check_link_application(CHAT_ID, b["number"], wrong_iin(i))
    again = await kz.check_link_application(CHAT_ID, a["number"], a["child_iin"])
    assert again.already and again.number == a["number"]
    again = await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], CHAT_ID, CHAT_ID)
    assert again.already
    assert await kz.link_locked_until(CHAT_ID) is None  # the re-links counted no failure either
    with pytest.raises(LinkLocked):
        await kz.check_link_application(CHAT_ID, b["number"], wrong_iin(4))
    with pytest.raises(LinkLocked):
        await kz.check_link_application(CHAT_ID, b["number"], b["child_iin"])
    with pytest.raises(LinkLocked):  # and the chat's own application is no way round it
        await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], CHAT_ID, CHAT_ID)
    assert await links(kz) == [a["number"]]


async def test_a_link_made_in_between_does_not_forgive_failures(kz: Kezek, world: World,
                                                                 clock: FrozenClock) -> None:
    """Failures within the hour count whatever succeeded in between, a new link included."""
    a, b, c = world.row(), world.row(), world.row()
    await world.apps(a, b, c)
    for i in range(3):
        with pytest.raises(LinkFailed):
            await kz.check_link_application(CHAT_ID, c["number"], wrong_iin(i))
        clock.advance(dt.timedelta(minutes=1))
    first_failure = clock.now() - dt.timedelta(minutes=3)
    await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], CHAT_ID, CHAT_ID)
    with pytest.raises(LinkFailed):
        await kz.check_link_application(CHAT_ID, c["number"], wrong_iin(3))
    locked = await fail_once(kz, c)
    assert isinstance(locked, LinkLocked) and locked.params["until"] == first_failure + dt.timedelta(hours=1)
    with pytest.raises(LinkLocked):
        await kz.link_by_contact(CHAT_ID, b["number"], b["child_iin"], b["phone"], CHAT_ID, CHAT_ID)
    assert await links(kz) == [a["number"]]


async def test_already_linked_counts_neither_way_on_every_path(kz: Kezek, world: World) -> None:
    """Number and IIN of an application the chat holds: "already linked" from the check, the
    contact, the code request (no code is e-mailed) and the code; nothing counted."""
    a, b = world.row(), world.row()
    await world.apps(a, b)
    await kz.send_link_code(CHAT_ID, a["number"], a["child_iin"])
    [notice] = await outbox_codes(kz)
    await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], CHAT_ID, CHAT_ID)
    for i in range(4):  # (a wrong IIN with the number of the chat's own application is a failure too)
        with pytest.raises(LinkFailed):
            await kz.check_link_application(CHAT_ID, (a if i == 0 else b)["number"], wrong_iin(i))
    for _ in range(3):
        assert (await kz.check_link_application(CHAT_ID, a["number"], a["child_iin"])).already
        assert (await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], CHAT_ID, CHAT_ID)).already
        # (someone else's contact changes nothing: the chat holds the application already)
        assert (await kz.link_by_contact(CHAT_ID, a["number"], a["child_iin"], a["phone"], 777, CHAT_ID)).already
        assert (await kz.send_link_code(CHAT_ID, a["number"], a["child_iin"])).already
    assert len(await outbox_codes(kz)) == 1  # no code e-mailed for an application the chat holds
    # The code e-mailed before the link still proves the same application: already linked.
    assert (await kz.link_by_code(CHAT_ID, notice.payload["code"])).already
    assert await kz.link_locked_until(CHAT_ID) is None
    with pytest.raises(LinkLocked):
        await kz.check_link_application(CHAT_ID, b["number"], wrong_iin(5))
    assert await links(kz) == [a["number"]]


async def test_email_code(kz: Kezek, world: World, clock: FrozenClock,
                          caplog: pytest.LogCaptureFixture) -> None:
    row = await one_app(world)
    # (aiosqlite's own DEBUG log echoes SQL parameters, the outbox payload included: INFO and up.)
    with caplog.at_level(logging.INFO):
        target = await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    assert target.email_masked == "p•••@example.kz"
    [notice] = await outbox_codes(kz)
    code = notice.payload["code"]
    assert len(code) == 6 and code.isdigit() and notice.application_id is not None
    assert code not in caplog.text
    async with kz.reading() as ctx:
        stored = await ctx.session.get(LinkCode, CHAT_ID)
        audit = (await ctx.session.execute(select(AuditEntry))).scalars().all()
    assert stored is not None and code not in stored.code_hash
    assert all(code not in str(a.data) for a in audit)
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(LinkFailed):
        await kz.link_by_code(CHAT_ID, wrong)
    with pytest.raises(LinkFailed):
        await kz.link_by_code(OTHER_CHAT, code)  # the code is bound to its chat
    target = await kz.link_by_code(CHAT_ID, code)
    assert target.number == row["number"]
    assert await links(kz) == [row["number"]]
    with pytest.raises(LinkFailed):  # used once
        await kz.link_by_code(CHAT_ID, code)


async def test_expired_code_is_refused(kz: Kezek, world: World, clock: FrozenClock) -> None:
    row = await one_app(world)
    await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    [notice] = await outbox_codes(kz)
    clock.advance(dt.timedelta(minutes=15))
    with pytest.raises(LinkFailed):
        await kz.link_by_code(CHAT_ID, notice.payload["code"])
    assert await links(kz) == []


async def test_a_new_code_replaces_the_old_one(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    first, second = await outbox_codes(kz)
    if first.payload["code"] != second.payload["code"]:
        with pytest.raises(LinkFailed):
            await kz.link_by_code(CHAT_ID, first.payload["code"])
    await kz.link_by_code(CHAT_ID, second.payload["code"])
    assert await links(kz) == [row["number"]]


async def test_code_tries_are_limited(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    [notice] = await outbox_codes(kz)
    code = notice.payload["code"]
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c != code][:4]
    for c in wrong:
        with pytest.raises(LinkFailed):
            await kz.link_by_code(CHAT_ID, c)
    with pytest.raises(LinkLocked):  # the fifth failure locks the chat
        await kz.link_by_code(CHAT_ID, "999999" if code != "999999" else "888888")
    with pytest.raises(LinkLocked):
        await kz.link_by_code(CHAT_ID, code)
    assert await links(kz) == []


# --- the dialogue ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_whole_dialogue_with_a_contact(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    row = await one_app(world)
    await tg.press(f"lang:{lang}")
    [ask_number] = sent(await tg.send(lang, text="/link"))
    assert ask_number.text == gettext(
        lang, "Enter the application number as it is written in the application. To stop, send /cancel.")
    # A photo mid-dialogue gets a clear answer and changes nothing.
    [hint] = sent(await tg.send(lang, photo=[PhotoSize(file_id="p", file_unique_id="pu", width=9, height=9)]))
    assert hint.text.startswith(gettext(lang, "I cannot use this message here."))
    assert ask_number.text in hint.text
    [ask_iin] = sent(await tg.send(lang, text=row["number"]))
    assert ask_iin.text == gettext(lang, "Enter the child's IIN (12 digits).")
    # /status mid-dialogue is not the status screen (it comes first only outside a dialogue).
    [hint] = sent(await tg.send(lang, text="/status"))
    assert hint.text.startswith(gettext(lang, "I cannot use this message here."))
    assert ask_iin.text in hint.text
    sticker = Sticker(file_id="s", file_unique_id="su", type="regular", width=512, height=512,
                      is_animated=False, is_video=False)
    [hint] = sent(await tg.send(lang, sticker=sticker))
    assert ask_iin.text in hint.text
    proof, email = sent(await tg.send(lang, text=row["child_iin"]))
    assert isinstance(proof.reply_markup, ReplyKeyboardMarkup)
    [[button]] = proof.reply_markup.keyboard
    assert button.request_contact and button.text == gettext(lang, "Share my phone number")
    assert isinstance(email.reply_markup, InlineKeyboardMarkup)
    [[inline]] = email.reply_markup.inline_keyboard
    assert inline.text == gettext(lang, "Send a code to my e-mail") and inline.callback_data == "link:email"
    assert "p•••@example.kz" in email.text
    [hint] = sent(await tg.send(lang, sticker=sticker))
    assert hint.text.startswith(gettext(lang, "I cannot use this message here."))
    assert await links(kz) == []
    contact = Contact(phone_number=row["phone"].lstrip("+"), first_name="Айгерим", user_id=CHAT_ID)
    [done] = sent(await tg.send(lang, contact=contact))
    assert done.text == gettext(
        lang, "Done! Application {number} (child's IIN {iin}) is now linked to this chat.",
        number=row["number"], iin=row["child_iin"][:2] + "•" * 8 + row["child_iin"][-2:])
    assert row["child_iin"] not in done.text
    assert gettext("ru", "Linking cancelled.") != gettext("kk", "Linking cancelled.")
    assert await links(kz) == [row["number"]]
    # The dialogue is over: a contact now is just an unknown message.
    [after] = sent(await tg.send(lang, contact=contact))
    assert after.text == gettext(
        lang, "I did not understand this message. Please use the menu buttons below or send /help.")


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_failures_get_one_answer_and_a_lock(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    row = await one_app(world)
    await tg.press(f"lang:{lang}")
    failed = gettext(lang, "The details do not match. Please check them and try again; to start "
                                "over, send /link.")
    answers = []
    for number, iin in [("A99999", row["child_iin"]), (row["number"], make_iin(dt.date(2023, 3, 15), 999))]:
        await tg.send(lang, text="/link")
        await tg.send(lang, text=number)
        answers += texts(await tg.send(lang, text=iin))
    # Someone else's contact.
    await tg.send(lang, text="/link")
    await tg.send(lang, text=row["number"])
    await tg.send(lang, text=row["child_iin"])
    stranger = Contact(phone_number=row["phone"], first_name="X", user_id=555)
    answers += texts(await tg.send(lang, contact=stranger))
    assert answers == [failed] * 3
    for _ in range(2):
        await tg.send(lang, text="/link")
        await tg.send(lang, text="A99999")
        last = texts(await tg.send(lang, text=row["child_iin"]))
    until = await kz.link_locked_until(CHAT_ID)
    assert until is not None
    # (its wording and the date's format: tests/locales/test_locales.py, locales/errors.py)
    locked = locked_text(lang, until)
    assert locked != locked_text("kk" if lang == "ru" else "ru", until)
    assert last == [locked]
    assert texts(await tg.send(lang, text="/link")) == [locked]
    assert await links(kz) == []


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_dialogue_says_already_linked(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    row = await one_app(world)
    await kz.link_by_contact(CHAT_ID, row["number"], row["child_iin"], row["phone"], CHAT_ID, CHAT_ID)
    await tg.press(f"lang:{lang}")
    await tg.send(lang, text="/link")
    await tg.send(lang, text=row["number"])
    [reply] = sent(await tg.send(lang, text=row["child_iin"]))
    assert reply.text == gettext(
        lang, "Application {number} (child's IIN {iin}) is already linked to this chat.",
        number=row["number"], iin=row["child_iin"][:2] + "•" * 8 + row["child_iin"][-2:])
    assert reply.text != gettext("ru" if lang == "kk" else "kk",
                                      "Application {number} (child's IIN {iin}) is already linked to this chat.",
                                      number=row["number"], iin=row["child_iin"][:2] + "•" * 8 + row["child_iin"][-2:])
    assert isinstance(reply.reply_markup, ReplyKeyboardMarkup)  # the main menu: the dialogue is over
    [hint] = sent(await tg.send(lang, text="123456"))
    assert hint.text == gettext(
        lang, "I did not understand this message. Please use the menu buttons below or send /help.")
    assert await kz.link_locked_until(CHAT_ID) is None and await links(kz) == [row["number"]]


async def test_dialogue_with_an_email_code_and_cancel(tg: Harness, kz: Kezek, world: World) -> None:
    row = await one_app(world)
    await tg.press("lang:kk")
    await tg.send("ru", text="/link")
    [cancelled] = sent(await tg.send("ru", text="/cancel"))
    assert cancelled.text == gettext("kk", "Linking cancelled.")
    [hint] = sent(await tg.send("ru", text=row["number"]))  # no dialogue any more
    assert hint.text == gettext(
        "kk", "I did not understand this message. Please use the menu buttons below or send /help.")
    await tg.send("ru", text=gettext("kk", "Link an application"))  # the menu button
    await tg.send("ru", text=row["number"])
    await tg.send("ru", text=row["child_iin"])
    calls = await tg.press("link:email")
    assert [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    [prompt] = [c for c in calls if isinstance(c, SendMessage)]
    assert prompt.text == gettext("kk", "We have sent a 6-digit code to {email}. It is valid for "
                                             "15 minutes. Type it here.", email="p•••@example.kz")
    [notice] = await outbox_codes(kz)
    code = notice.payload["code"]
    [wrong] = texts(await tg.send("ru", text="000000" if code != "000000" else "111111"))
    assert wrong == gettext("kk", "The details do not match. Please check them and try again; to "
                                       "start over, send /link.")
    [done] = texts(await tg.send("ru", text=code))
    assert done == gettext("kk", "Done! Application {number} (child's IIN {iin}) is now linked to "
                                      "this chat.", number=row["number"],
                                iin=row["child_iin"][:2] + "•" * 8 + row["child_iin"][-2:])
    assert await links(kz) == [row["number"]]
