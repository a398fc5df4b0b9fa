"""/settings: optional notices, the chat's own e-mail (confirmed with a code sent to it) and the rate
limit of e-mailed codes — through the facade and through the real Dispatcher (on the mocked
Bot of tests/support/telegram.py)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from aiogram.types import PhotoSize, Sticker
from sqlalchemy import func, select

from locales import gettext
from locales.errors import error_text
from locales.formats import format_datetime
from services.clock import FrozenClock
from services.errors import InvalidEmail, ValidationError
from services.kezek import Kezek
from services.linking import CodeRateLimited
from services.notices import NoticeKind
from services.settings import (
    ChatSettings,
    EmailCodeExpired,
    EmailCodeMissing,
    EmailCodeTriesExceeded,
    EmailCodeWrong,
    notice_wanted,
)
from storage.models import AuditEntry, Chat, OutboxMessage
from tests.support.telegram import CHAT_ID, HINT, OTHER_CHAT, STALE, Harness, answers, edits, inline_buttons, sent
from tests.support.world import World, email_codes

LANGS = ["ru", "kk"]

STICKER = Sticker(file_id="s", file_unique_id="su", type="regular", width=512, height=512,
                  is_animated=False, is_video=False)
PHOTO = [PhotoSize(file_id="p", file_unique_id="pu", width=9, height=9)]
CANT_USE = "I cannot use this message here."
ADDRESS_PROMPT = ("Type the e-mail address for copies of the notices; we will send a code to it. "
                  "To stop, send /cancel.")
CODE_PROMPT = "We have sent a 6-digit code to {email}. It is valid for 15 minutes. Type it here."
DONE = "Done! Copies of the notices will also go to {email}."
CANCELLED = "Changing the e-mail cancelled."
RATE_LIMITED = "Too many codes have been sent from this chat. You can ask for a new code after {until}."


async def outbox_count(kz: Kezek) -> int:
    async with kz.reading() as ctx:
        return int((await ctx.session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one())


async def chat_row(kz: Kezek, chat_id: int = CHAT_ID) -> Chat | None:
    async with kz.reading() as ctx:
        return await ctx.session.get(Chat, chat_id)


def other_code(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# --- notice_wanted ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "moves", "reminders", "open_seats", "wanted"), [
    (NoticeKind.QUEUE_MOVED, True, False, False, True),
    (NoticeKind.QUEUE_MOVED, False, True, True, False),
    (NoticeKind.REMINDER_SHOWUP, False, True, False, True),
    (NoticeKind.REMINDER_DOCS, True, False, True, False),
    (NoticeKind.REMINDER_OFFER, True, False, True, False),
    (NoticeKind.SEATS_OPEN, False, False, True, True),
    (NoticeKind.SEATS_OPEN, True, True, False, False),
    # Mandatory notices come whatever the settings say.
    (NoticeKind.TURN_CAME, False, False, False, True),
    (NoticeKind.REFERRAL_ISSUED, False, False, False, True),
    (NoticeKind.REFERRAL_ANNULLED, False, False, False, True),
    (NoticeKind.STOPLIST_ENDED, False, False, False, True),
    (NoticeKind.REMOVED, False, False, False, True),
    (NoticeKind.EMAIL_CODE, False, False, False, True),
    # So does a kind another version of Kezek wrote (as the outbox row stores it).
    ("something_new", False, False, False, True),
])
def test_notice_wanted(kind: str, moves: bool, reminders: bool, open_seats: bool, wanted: bool) -> None:
    chat = Chat(id=1, notify_moves=moves, notify_reminders=reminders, notify_open_seats=open_seats)
    assert notice_wanted(chat, kind) is wanted


# --- the facade --------------------------------------------------------------------------------------------

async def test_defaults_and_toggles_persist(kz: Kezek) -> None:
    assert await kz.chat_settings(CHAT_ID) == ChatSettings(None, False, True, True)
    await kz.set_chat_language(CHAT_ID, "kk")
    await kz.set_notice(CHAT_ID, "moves", True)
    await kz.set_notice(CHAT_ID, "reminders", False)
    await kz.set_notice(CHAT_ID, "reminders", False)  # twice: no change, no second audit entry
    settings = await kz.chat_settings(CHAT_ID)
    assert (settings.language, settings.notify_moves, settings.notify_reminders,
            settings.notify_open_seats) == ("kk", True, False, True)
    assert (await kz.chat_settings(OTHER_CHAT)).notify_moves is False
    # A chat that never chose a language gets a row with the defaults.
    await kz.set_notice(OTHER_CHAT, "open_seats", False)
    assert await kz.chat_settings(OTHER_CHAT) == ChatSettings(None, False, True, False)
    with pytest.raises(ValidationError):
        await kz.set_notice(CHAT_ID, "your_turn", False)
    async with kz.reading() as ctx:
        audit = (await ctx.session.execute(
            select(AuditEntry).where(AuditEntry.action == "set_notice").order_by(AuditEntry.id))).scalars().all()
    assert [(a.entity_id, a.data) for a in audit] == [
        (CHAT_ID, {"notice": "moves", "on": True}), (CHAT_ID, {"notice": "reminders", "on": False}),
        (OTHER_CHAT, {"notice": "open_seats", "on": False})]


async def test_email_is_confirmed_with_a_code_sent_to_the_new_address(
        kz: Kezek, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        email = await kz.request_email(CHAT_ID, "  Mama.Aigerim@Example.KZ ")
    assert email == "Mama.Aigerim@example.kz"
    [notice] = await email_codes(kz)
    code = notice.payload["code"]
    assert len(code) == 6 and code.isdigit()
    assert notice.application_id is None
    assert notice.payload["email"] == email and notice.payload["chat_id"] == CHAT_ID
    assert notice.dedupe_key.startswith(f"email_code:{CHAT_ID}:")
    assert code not in caplog.text and email not in caplog.text
    settings = await kz.chat_settings(CHAT_ID)
    assert settings.email is None and settings.email_pending == email
    assert email not in repr(settings)
    row = await chat_row(kz)
    assert row is not None and code not in (row.email_code_hash or "") and row.email_code_hash
    # A wrong code counts a try (kept although it raised).
    with pytest.raises(EmailCodeWrong):
        await kz.confirm_email(CHAT_ID, other_code(code))
    row = await chat_row(kz)
    assert row is not None and row.email_code_attempts == 1
    with pytest.raises(EmailCodeMissing):  # the code is bound to its chat
        await kz.confirm_email(OTHER_CHAT, code)
    assert await kz.confirm_email(CHAT_ID, f" {code[:3]} {code[3:]} ") == email
    settings = await kz.chat_settings(CHAT_ID)
    assert settings.email == email and settings.email_pending is None
    with pytest.raises(EmailCodeMissing):  # used once
        await kz.confirm_email(CHAT_ID, code)
    async with kz.reading() as ctx:
        audit = (await ctx.session.execute(select(AuditEntry).where(AuditEntry.entity == "chat"))).scalars().all()
    assert {"email_code_sent", "email_code_failed", "email_set"} <= {a.action for a in audit}
    assert all(code not in str(a.data) and email not in str(a.data) for a in audit)
    # Removing it.
    assert await kz.remove_email(CHAT_ID) is True
    assert (await kz.chat_settings(CHAT_ID)).email is None
    assert await kz.remove_email(CHAT_ID) is False


@pytest.mark.parametrize("raw", ["", "not an address", "a@b", "x" * 500 + "@example.kz", "мама@"])
async def test_a_bad_address_writes_nothing(kz: Kezek, raw: str) -> None:
    with pytest.raises(InvalidEmail):
        await kz.request_email(CHAT_ID, raw)
    assert await outbox_count(kz) == 0
    assert await chat_row(kz) is None


async def test_a_new_address_replaces_the_pending_one(kz: Kezek) -> None:
    await kz.request_email(CHAT_ID, "first@example.kz")
    await kz.request_email(CHAT_ID, "second@example.kz")
    first, second = await email_codes(kz)
    assert (first.payload["email"], second.payload["email"]) == ("first@example.kz", "second@example.kz")
    if first.payload["code"] != second.payload["code"]:
        with pytest.raises(EmailCodeWrong):
            await kz.confirm_email(CHAT_ID, first.payload["code"])
    assert await kz.confirm_email(CHAT_ID, second.payload["code"]) == "second@example.kz"


async def test_an_expired_code_is_refused(kz: Kezek, clock: FrozenClock) -> None:
    await kz.set_notice(CHAT_ID, "moves", True)
    await kz.request_email(CHAT_ID, "mama@example.kz")
    [notice] = await email_codes(kz)
    clock.advance(dt.timedelta(minutes=14, seconds=59))
    with pytest.raises(EmailCodeWrong):
        await kz.confirm_email(CHAT_ID, other_code(notice.payload["code"]))
    clock.advance(dt.timedelta(seconds=1))
    with pytest.raises(EmailCodeExpired):
        await kz.confirm_email(CHAT_ID, notice.payload["code"])
    settings = await kz.chat_settings(CHAT_ID)
    assert settings.email is None and settings.email_pending is None
    with pytest.raises(EmailCodeMissing):
        await kz.confirm_email(CHAT_ID, notice.payload["code"])


async def test_code_tries_are_limited(kz: Kezek) -> None:
    await kz.request_email(CHAT_ID, "mama@example.kz")
    [notice] = await email_codes(kz)
    code = notice.payload["code"]
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c != code]
    for c in wrong[:4]:
        with pytest.raises(EmailCodeWrong):
            await kz.confirm_email(CHAT_ID, c)
    with pytest.raises(EmailCodeTriesExceeded):
        await kz.confirm_email(CHAT_ID, wrong[4])
    with pytest.raises(EmailCodeMissing):  # even the right code now
        await kz.confirm_email(CHAT_ID, code)
    assert (await kz.chat_settings(CHAT_ID)).email is None


async def test_three_code_mails_an_hour(kz: Kezek, clock: FrozenClock) -> None:
    first_at = clock.now()
    for i in range(3):
        await kz.request_email(CHAT_ID, f"mama{i}@example.kz")
        clock.advance(dt.timedelta(minutes=10))
    with pytest.raises(CodeRateLimited) as info:
        await kz.request_email(CHAT_ID, "mama3@example.kz")
    assert info.value.params["until"] == first_at + dt.timedelta(hours=1)
    assert len(await email_codes(kz)) == 3
    assert (await kz.chat_settings(CHAT_ID)).email_pending == "mama2@example.kz"  # nothing changed
    # Another chat is not affected.
    await kz.request_email(OTHER_CHAT, "papa@example.kz")
    clock.set(first_at + dt.timedelta(minutes=59, seconds=59))
    with pytest.raises(CodeRateLimited):
        await kz.request_email(CHAT_ID, "mama3@example.kz")
    clock.set(first_at + dt.timedelta(hours=1))
    assert await kz.code_mail_allowed_at(CHAT_ID) is None
    await kz.request_email(CHAT_ID, "mama3@example.kz")
    assert [n.payload["email"] for n in await email_codes(kz)][-1] == "mama3@example.kz"
    with pytest.raises(CodeRateLimited):  # the second of the three is still within its hour
        await kz.request_email(CHAT_ID, "mama4@example.kz")


async def test_link_codes_count_towards_the_limit(kz: Kezek, world: World, clock: FrozenClock) -> None:
    row = world.row()
    await world.apps(row)
    for _ in range(2):
        await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    await kz.request_email(CHAT_ID, "mama@example.kz")
    before = await outbox_count(kz)
    with pytest.raises(CodeRateLimited):
        await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    with pytest.raises(CodeRateLimited):
        await kz.request_email(CHAT_ID, "mama@example.kz")
    assert await outbox_count(kz) == before
    assert await kz.link_locked_until(CHAT_ID) is None  # the refusal is no failed link attempt
    clock.advance(dt.timedelta(hours=1))
    await kz.send_link_code(CHAT_ID, row["number"], row["child_iin"])
    assert await outbox_count(kz) == before + 1


# --- the screen, through the Dispatcher ----------------------------------------------------------------------

def screen(lang: str, *, moves: bool = False, reminders: bool = True, open_seats: bool = True,
           email: str | None = None) -> str:
    from handlers.settings import settings_text

    return settings_text(lang, ChatSettings(lang, moves, reminders, open_seats, email))


@pytest.mark.parametrize("lang", LANGS)
async def test_settings_screen_and_toggles(tg: Harness, kz: Kezek, lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    [reply] = sent(await tg.send(lang, text="/settings"))
    g = lambda msgid, **kw: gettext(lang, msgid, **kw)  # noqa: E731
    assert reply.text == screen(lang)
    assert reply.text.startswith(g("Settings"))
    assert g("Language: {language}", language="Қазақша" if lang == "kk" else "Русский") in reply.text
    assert f"{g('Queue number changes')}: {g('off')}" in reply.text
    assert f"{g('Reminders before deadlines')}: {g('on')}" in reply.text
    assert g("Notices about your turn, referrals, annulments, the stop-list and removal from the queue "
             "always come.") in reply.text
    assert g("E-mail for copies of the notices: not set") in reply.text
    assert inline_buttons(reply.reply_markup) == [
        (g("Change language"), "stg:lang"),
        (g("Turn on: {notice}", notice=g("Queue number changes")), "ntc:moves:1"),
        (g("Turn off: {notice}", notice=g("Reminders before deadlines")), "ntc:reminders:0"),
        (g("Turn off: {notice}", notice=g("Seats opened to everyone in the birth year")), "ntc:open_seats:0"),
        (g("Set an e-mail"), "stg:email"),
    ]
    # The toggles read in the chat's language (their msgids once never reached the catalogs, and
    # g() above would have fallen back to the same English).
    assert [label for label, _ in inline_buttons(reply.reply_markup)][1:4] == {
        "ru": ["Включить: Изменения номера", "Выключить: Напоминания о сроках",
               "Выключить: Места, открытые всем"],
        "kk": ["Қосу: Нөмірдің өзгеруі", "Өшіру: Мерзімдер туралы еске салу",
               "Өшіру: Барлығына ашылған орындар"]}[lang]
    # The menu button shows the same screen.
    [again] = sent(await tg.send(lang, text=gettext(lang, "Settings")))
    assert again.text == reply.text
    # Turning the moves on edits the screen in place and is kept.
    calls = await tg.press("ntc:moves:1")
    [edit] = edits(calls)
    assert sent(calls) == [] and answers(calls)
    assert edit.text == screen(lang, moves=True)
    assert f"{g('Queue number changes')}: {g('on')}" in edit.text
    turn_off = g("Turn off: {notice}", notice=g("Queue number changes"))
    assert (turn_off, "ntc:moves:0") in inline_buttons(edit.reply_markup)
    assert (await kz.chat_settings(CHAT_ID)).notify_moves is True
    # A double press changes nothing more.
    await tg.press("ntc:moves:1")
    assert (await kz.chat_settings(CHAT_ID)).notify_moves is True
    [edit] = edits(await tg.press("ntc:reminders:0"))
    assert edit.text == screen(lang, moves=True, reminders=False)
    settings = await kz.chat_settings(CHAT_ID)
    assert (settings.notify_moves, settings.notify_reminders, settings.notify_open_seats) == (True, False, True)
    # The language button offers the picker.
    [picker] = sent(await tg.press("stg:lang"))
    assert [d for _, d in inline_buttons(picker.reply_markup)] == ["lang:kk", "lang:ru"]


@pytest.mark.parametrize("data", ["ntc:your_turn:0", "ntc:moves:maybe", "ntc:moves", "stg:nope", "stg:cancel"])
async def test_forged_settings_buttons_change_nothing(tg: Harness, kz: Kezek, data: str) -> None:
    await kz.set_chat_language(CHAT_ID, "kk")
    before = await kz.chat_settings(CHAT_ID)
    calls = await tg.press(data)
    [ack] = answers(calls)
    assert ack.show_alert and ack.text == gettext("kk", STALE)
    assert sent(calls) == [] and edits(calls) == []
    assert await kz.chat_settings(CHAT_ID) == before


# --- the e-mail dialogue --------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
async def test_email_dialogue_end_to_end(tg: Harness, kz: Kezek, lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    g = lambda msgid, **kw: gettext(lang, msgid, **kw)  # noqa: E731
    [prompt] = sent(await tg.press("stg:email"))
    assert prompt.text == g(ADDRESS_PROMPT)
    assert inline_buttons(prompt.reply_markup) == [(g("Cancel"), "stg:cancel")]
    # Odd messages get a clear answer and the dialogue stays.
    for content in ({"sticker": STICKER}, {"photo": PHOTO}, {"text": "x" * 1000}, {"text": "/status"}):
        [hint] = sent(await tg.send(lang, **content))
        assert hint.text == g(CANT_USE) + "\n" + g(ADDRESS_PROMPT)
    [bad] = sent(await tg.send(lang, text="mama at example"))
    assert bad.text == error_text(lang, InvalidEmail()) + "\n" + g(ADDRESS_PROMPT)
    assert await email_codes(kz) == []
    [ask_code] = sent(await tg.send(lang, text="mama@example.kz"))
    assert ask_code.text == g(CODE_PROMPT, email="m•••@example.kz")
    [notice] = await email_codes(kz)
    assert notice.payload["email"] == "mama@example.kz"
    code = notice.payload["code"]
    [hint] = sent(await tg.send(lang, sticker=STICKER))
    assert hint.text == g(CANT_USE) + "\n" + g("Type the code from the e-mail. To stop, send /cancel.")
    [hint] = sent(await tg.send(lang, text="my code is twelve"))  # not a code: no try counted
    assert hint.text.startswith(g(CANT_USE))
    row = await chat_row(kz)
    assert row is not None and row.email_code_attempts == 0
    [wrong] = sent(await tg.send(lang, text=other_code(code)))
    assert wrong.text == error_text(lang, EmailCodeWrong())
    row = await chat_row(kz)
    assert row is not None and row.email_code_attempts == 1 and row.email is None
    [done] = sent(await tg.send(lang, text=code))
    assert done.text == g(DONE, email="m•••@example.kz")
    assert (await kz.chat_settings(CHAT_ID)).email == "mama@example.kz"
    # The dialogue is over; the screen shows the address masked, with change and remove buttons.
    [after] = sent(await tg.send(lang, text=code))
    assert after.text == g(HINT)
    [shown] = sent(await tg.send(lang, text="/settings"))
    assert g("E-mail for copies of the notices: {email}", email="m•••@example.kz") in shown.text
    assert "mama@example.kz" not in shown.text
    assert inline_buttons(shown.reply_markup)[-2:] == [(g("Change the e-mail"), "stg:email"),
                                                (g("Remove the e-mail"), "stg:rmemail")]
    calls = await tg.press("stg:rmemail")
    [ack] = answers(calls)
    assert ack.text == g("The e-mail has been removed: copies of the notices will no longer be sent to it.")
    [edit] = edits(calls)
    assert edit.text == screen(lang)
    assert (await kz.chat_settings(CHAT_ID)).email is None


@pytest.mark.parametrize("lang", LANGS)
async def test_an_expired_code_ends_the_dialogue(tg: Harness, kz: Kezek, clock: FrozenClock, lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    await tg.press("stg:email")
    await tg.send(lang, text="mama@example.kz")
    [notice] = await email_codes(kz)
    clock.advance(dt.timedelta(minutes=16))
    [expired] = sent(await tg.send(lang, text=notice.payload["code"]))
    assert expired.text == gettext(lang, "The code has expired. Ask for a new one in /settings.")
    assert (await kz.chat_settings(CHAT_ID)).email is None
    [after] = sent(await tg.send(lang, text=notice.payload["code"]))  # no dialogue any more
    assert after.text == gettext(lang, HINT)


@pytest.mark.parametrize("lang", LANGS)
async def test_cancel_ends_the_dialogue(tg: Harness, kz: Kezek, lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    await tg.press("stg:email")
    calls = await tg.press("stg:cancel")
    [bye] = sent(calls)
    assert bye.text == gettext(lang, CANCELLED)
    [after] = sent(await tg.send(lang, text="mama@example.kz"))
    assert after.text == gettext(lang, HINT)
    # /cancel while waiting for the code ends it too: the code is no longer taken.
    await tg.press("stg:email")
    await tg.send(lang, text="mama@example.kz")
    [notice] = await email_codes(kz)
    await tg.send(lang, text="/cancel")
    await tg.send(lang, text=notice.payload["code"])
    assert (await kz.chat_settings(CHAT_ID)).email is None
    # Another menu button mid-dialogue leaves it and does what it says.
    await tg.press("stg:email")
    [unlink_hint] = sent(await tg.send(lang, text=gettext(lang, "Unlink")))
    assert unlink_hint.text == gettext(lang, "No application is linked to this chat yet. To link one, send /link.")
    [after] = sent(await tg.send(lang, text="mama@example.kz"))
    assert after.text == gettext(lang, HINT)
    # ... "My queue status" too: the status screen, after the dialogue's handlers let it go.
    await tg.press("stg:email")
    [status_hint] = sent(await tg.send(lang, text=gettext(lang, "My queue status")))
    assert status_hint.text == gettext(lang, "No application is linked to this chat yet. To link one, send /link.")
    [after] = sent(await tg.send(lang, text="mama@example.kz"))
    assert after.text == gettext(lang, HINT)
    assert len(await email_codes(kz)) == 1


@pytest.mark.parametrize("lang", LANGS)
async def test_the_fourth_code_mail_in_an_hour_is_refused(tg: Harness, kz: Kezek, clock: FrozenClock,
                                                          lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    first_at = clock.now()
    for i in range(3):
        await tg.press("stg:email")
        [ok] = sent(await tg.send(lang, text=f"mama{i}@example.kz"))
        assert ok.text == gettext(lang, CODE_PROMPT, email="m•••@example.kz")
        clock.advance(dt.timedelta(minutes=5))
    await tg.press("stg:email")
    [refused] = sent(await tg.send(lang, text="mama3@example.kz"))
    until = first_at + dt.timedelta(hours=1)
    assert refused.text == gettext(lang, RATE_LIMITED, until=format_datetime(lang, until, zone="local"))
    assert len(await email_codes(kz)) == 3
    assert (await kz.chat_settings(CHAT_ID)).email_pending == "mama2@example.kz"
    clock.set(until)
    await tg.press("stg:email")
    [ok] = sent(await tg.send(lang, text="mama3@example.kz"))
    assert ok.text == gettext(lang, CODE_PROMPT, email="m•••@example.kz")
    assert [n.payload["email"] for n in await email_codes(kz)][-1] == "mama3@example.kz"


def test_callback_data_fit_in_64_bytes() -> None:
    from handlers.callbacks import NoticeCallback, SettingsCallback

    for key in ("moves", "reminders", "open_seats"):
        assert len(NoticeCallback(key=key, on=False).pack().encode()) <= 64
    for action in ("lang", "email", "rmemail", "cancel"):
        assert len(SettingsCallback(action=action).pack().encode()) <= 64



@pytest.mark.parametrize("lang", LANGS)
async def test_the_link_dialogue_tells_about_the_limit(tg: Harness, kz: Kezek, world: World,
                                                       clock: FrozenClock, lang: str) -> None:
    row = world.row()
    await world.apps(row)
    await kz.set_chat_language(CHAT_ID, lang)
    for _ in range(3):
        await kz.request_email(CHAT_ID, "mama@example.kz")
    await tg.send(lang, text="/link")
    await tg.send(lang, text=row["number"])
    await tg.send(lang, text=row["child_iin"])
    calls = await tg.press("link:email")
    until = clock.now() + dt.timedelta(hours=1)
    refusal = gettext(lang, RATE_LIMITED, until=format_datetime(lang, until, zone="local"))
    assert refusal in [m.text for m in sent(calls)] + [a.text for a in answers(calls)]
    async with kz.reading() as ctx:
        kinds = (await ctx.session.execute(select(OutboxMessage.kind))).scalars().all()
    assert NoticeKind.LINK_CODE not in kinds
