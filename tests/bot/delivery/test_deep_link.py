"""One-tap linking: the registration e-mail's deep link and ``/start <token>``.

The import writes one registration notice per new application; the e-mail (through the real
sender into the mail folder) carries ``https://t.me/<bot>?start=<token>`` whose token verifies;
``/start <token>`` through the real Dispatcher links the chat at once, in either language; a used,
expired, altered, foreign or other-purpose token gets the answer of any failed link, counts for
the lock-out and is logged without its text. SQLite and PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import GetMe
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from sqlalchemy import func, select

from bot.delivery.deeplinks import FALLBACK_AFTER, BotUsername
from bot.delivery.sender import SendPolicy, drain_once
from handlers.link import failed_text, linked_text, locked_text
from locales import gettext
from locales.formats import format_datetime
from services import deep_link, linking
from services.clock import FrozenClock
from services.email import FolderSender
from services.errors import BulkRejected, LinkFailed, LinkLocked
from services.kezek import Kezek
from services.referral_check import referral_token
from services.signing import TokenError
from services.validation import mask_iin
from storage.models import Application, AuditEntry, ChatLink, Delivery, OutboxMessage, UsedToken
from tests.support.telegram import CHAT_ID, OTHER_CHAT, Harness, MockedBot, sent
from tests.support.world import World, app_id, links, one_app

LANGS = ("ru", "kk")


# --- helpers -------------------------------------------------------------------------------------

async def registration_notices(kz: Kezek) -> list[OutboxMessage]:
    async with kz.reading(with_calendar=False) as ctx:
        return list((await ctx.session.execute(select(OutboxMessage).where(
            OutboxMessage.kind == deep_link.REGISTRATION_KIND).order_by(OutboxMessage.id))).scalars())


async def token_for(kz: Kezek, number: str) -> str:
    """The token the registration e-mail of ``number`` carries (its expiry from the notice)."""
    ident = await app_id(kz, number)
    [notice] = [n for n in await registration_notices(kz) if n.application_id == ident]
    expires_at = dt.datetime.fromisoformat(notice.payload["link_expires_at"])
    async with kz.reading(with_calendar=False) as ctx:
        email = (await ctx.session.execute(select(Application.email).where(Application.id == ident))).scalar_one()
    return deep_link.link_token(await kz.signer(), ident, expires_at, email)


def altered(token: str, at: int = 5) -> str:
    """The token with one character changed."""
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]


async def drain_mail(kz: Kezek, folder: Path, usernames: BotUsername | None = None) -> None:
    mailer = FolderSender(kz.clock, folder)
    policy_ = SendPolicy(usernames=usernames or BotUsername())
    while await drain_once(kz, None, mailer, policy_):
        pass


def mails_to(folder: Path, address: str) -> list[Any]:
    found = [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]
    return [m for m in found if m["To"] == address]


LINK_RE = re.compile(r"https://t\.me/kezek_bot\?start=([A-Za-z0-9_-]+)")


# --- the import writes the notices ---------------------------------------------------------------

async def test_import_writes_one_registration_notice_per_new_application(kz: Kezek, world: World,
                                                                          clock: FrozenClock) -> None:
    first, second = world.row(), world.row()
    await world.apps(first, second)
    notices = await registration_notices(kz)
    ids = [await app_id(kz, first["number"]), await app_id(kz, second["number"])]
    assert [n.application_id for n in notices] == ids
    assert [n.dedupe_key for n in notices] == [f"registration:{i}" for i in ids]
    expiry = dt.datetime.fromisoformat(notices[0].payload["link_expires_at"])
    assert expiry == (clock.now() + dt.timedelta(days=14)).replace(microsecond=0)
    # An update (a changed phone), an unchanged row and a new one: only the new one is notified.
    clock.advance(hours=1)
    third = world.row()
    await world.apps({**first, "phone": "+77019999999"}, second, third)
    notices = await registration_notices(kz)
    assert len(notices) == 3 and notices[-1].application_id == await app_id(kz, third["number"])


async def test_a_bulk_import_notifies_every_new_application(kz: Kezek, world: World) -> None:
    # More than one chunk of the import (children born on 200 days, so their IINs differ).
    rows = [world.row(birth_date=dt.date(2023, 1, 1) + dt.timedelta(days=i % 200)) for i in range(2500)]
    report = await kz.import_applications(rows)
    assert report.created == 2500
    async with kz.reading(with_calendar=False) as ctx:
        count = (await ctx.session.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == deep_link.REGISTRATION_KIND))).scalar_one()
        distinct = (await ctx.session.execute(select(func.count(func.distinct(OutboxMessage.application_id)))
                                              .where(OutboxMessage.kind == deep_link.REGISTRATION_KIND))).scalar_one()
    assert count == distinct == 2500


async def test_a_rejected_bulk_load_notifies_nobody(kz: Kezek, world: World) -> None:
    with pytest.raises(BulkRejected):
        await kz.import_applications([world.row(), {**world.row(), "child_iin": "123"}])
    assert await registration_notices(kz) == []


# --- the e-mail --------------------------------------------------------------------------------------

async def test_registration_email_carries_a_link_that_verifies(kz: Kezek, world: World, clock: FrozenClock,
                                                                tmp_path: Path) -> None:
    ahead = world.row()
    row = world.row()
    await world.apps(ahead, row)
    await drain_mail(kz, tmp_path, BotUsername("kezek_bot"))
    [mail] = mails_to(tmp_path, row["email"])
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    [token, token_again] = LINK_RE.findall(text)  # once in each language
    assert token == token_again and f'href="https://t.me/kezek_bot?start={token}"' in html
    claims = (await kz.signer()).verify("link", token, now=clock.now(), bound=deep_link.link_binding(row["email"]))
    assert claims.id == await app_id(kz, row["number"])
    with pytest.raises(TokenError):  # bound to the address it was sent to
        (await kz.signer()).verify("link", token, now=clock.now(), bound="someone@else.kz")
    assert claims.expires_at == (clock.now() + dt.timedelta(days=14)).replace(microsecond=0)
    # Both languages: the registration, the queue and the number (second: one application ahead).
    application = {lang: gettext(lang, "application {number} (child's IIN {iin})", number=row["number"],
                                      iin=mask_iin(row["child_iin"]))
                   for lang in LANGS}
    for lang in LANGS:
        assert gettext(lang, "{application} has been registered in the kindergarten queue.",
                            application=application[lang]) in text
        district = "Бостандыкский район" if lang == "ru" else "Бостандық ауданы"
        assert gettext(lang, "Queue: {district}, children born in {year}.", district=district,
                            year="2023") in text
        assert gettext(lang, "Queue number on {date}: {number}. It changes as seats are given out and "
                                  "new applications arrive.", date=format_datetime(lang, clock.now()),
                            number="2") in text
    assert row["child_iin"] not in text and row["phone"] not in text
    assert "Kezek:" in mail["Subject"]


async def test_the_number_in_the_email_is_the_one_when_it_is_sent(kz: Kezek, world: World, clock: FrozenClock,
                                                                   tmp_path: Path) -> None:
    row = world.row(submitted=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    await world.apps(row)
    clock.advance(hours=2)
    # Before the e-mail goes, an application submitted earlier arrives: ours is now second.
    await world.apps(world.row(submitted=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))
    await drain_mail(kz, tmp_path, BotUsername("kezek_bot"))
    [mail] = mails_to(tmp_path, row["email"])
    text = mail.get_body(("plain",)).get_content()
    for lang in LANGS:
        assert gettext(lang, "Queue number on {date}: {number}. It changes as seats are given out and "
                                  "new applications arrive.", date=format_datetime(lang, clock.now()),
                            number="2") in text


async def test_username_comes_from_getme_when_not_configured(kz: Kezek, world: World, tmp_path: Path) -> None:
    row = await one_app(world)
    usernames = BotUsername()
    usernames.attach(MockedBot())
    await drain_mail(kz, tmp_path, usernames)
    [mail] = mails_to(tmp_path, row["email"])
    assert LINK_RE.search(mail.get_body(("plain",)).get_content())


async def test_no_broken_link_when_the_username_is_unknown(kz: Kezek, world: World, clock: FrozenClock,
                                                           tmp_path: Path) -> None:
    row = await one_app(world)
    usernames = BotUsername()
    away = MockedBot()
    away.session.add_result_for(GetMe, exception=OSError("the Bot API is away"), times=None)
    usernames.attach(away)
    mailer = FolderSender(clock, tmp_path)
    # getMe fails: the e-mail waits (retried with backoff) rather than going without its link ...
    for _ in range(FALLBACK_AFTER - 1):
        assert await drain_once(kz, None, mailer, SendPolicy(usernames=usernames)) == 1
        assert mails_to(tmp_path, row["email"]) == []
        clock.advance(hours=1)
    # ... and after a few tries it goes with the /link instructions instead of a link.
    assert await drain_once(kz, None, mailer, SendPolicy(usernames=usernames)) == 1
    [mail] = mails_to(tmp_path, row["email"])
    text = mail.get_body(("plain",)).get_content()
    assert "t.me" not in text
    for lang in LANGS:
        assert gettext(lang, "To get the queue's notices in Telegram, open the Kezek bot and send /link.") in text


async def test_without_a_bot_or_setting_the_email_says_to_use_link(kz: Kezek, world: World, tmp_path: Path) -> None:
    row = await one_app(world)
    await drain_mail(kz, tmp_path)
    [mail] = mails_to(tmp_path, row["email"])
    assert "t.me" not in mail.get_body(("plain",)).get_content()
    async with kz.reading(with_calendar=False) as ctx:
        statuses = (await ctx.session.execute(select(Delivery.status))).scalars().all()
    assert statuses == ["sent"]


async def test_an_email_sent_after_the_link_expired_has_no_link(kz: Kezek, world: World, clock: FrozenClock,
                                                                tmp_path: Path) -> None:
    row = await one_app(world)
    clock.advance(days=15)  # an SMTP outage of two weeks
    await drain_mail(kz, tmp_path, BotUsername("kezek_bot"))
    [mail] = mails_to(tmp_path, row["email"])
    assert "t.me" not in mail.get_body(("plain",)).get_content()


# --- /start <token> through the real Dispatcher ---------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
async def test_start_with_the_token_links_at_once(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    row = await one_app(world)
    await tg.press(f"lang:{lang}")
    calls = await tg.send("ru", text=f"/start {await token_for(kz, row['number'])}")
    assert await links(kz) == [row["number"]]
    [target] = await kz.linked_applications(CHAT_ID)
    replies = sent(calls)
    assert replies[0].text == linked_text(lang, target)
    assert isinstance(replies[0].reply_markup, ReplyKeyboardMarkup)  # the main menu, in the chosen language
    assert gettext(lang, "My queue status") in [b.text for r in replies[0].reply_markup.keyboard for b in r]
    # Then the application's status card, with its queue number.
    assert len(replies) == 2 and row["number"] in replies[1].text
    assert gettext(lang, "Queue: {district}, children born in {year}", district=(
        "Бостандыкский район" if lang == "ru" else "Бостандық ауданы"), year="2023") in replies[1].text
    async with kz.reading(with_calendar=False) as ctx:
        link_row = await ctx.session.get(ChatLink, (CHAT_ID, target.application_id))
        audit = (await ctx.session.execute(select(AuditEntry.action, AuditEntry.data)
                                           .where(AuditEntry.action == "link"))).all()
    assert link_row is not None and link_row.method == linking.METHOD_DEEP_LINK
    assert [a.data["method"] for a in audit] == ["deep_link"]


@pytest.mark.parametrize("telegram_lang", ["ru", "kk"])
async def test_a_new_chat_is_answered_in_both_languages_with_the_picker(tg: Harness, kz: Kezek, world: World,
                                                                        telegram_lang: str) -> None:
    row = await one_app(world)
    [reply] = sent(await tg.send(telegram_lang, text=f"/start {await token_for(kz, row['number'])}"))
    [target] = await kz.linked_applications(CHAT_ID)
    for lang in LANGS:
        assert linked_text(lang, target) in reply.text
        assert gettext(lang, "Please choose a language:") in reply.text
    assert isinstance(reply.reply_markup, InlineKeyboardMarkup)
    # The picker then goes on as usual, and the bot speaks the chosen language.
    [greeting] = sent(await tg.press("lang:kk", language_code=telegram_lang))
    assert greeting.text == gettext("kk", "Welcome to Kezek! Here you can follow your child's place in the "
                                               "kindergarten queue and get notices about seats. Use the menu below.")


@pytest.mark.parametrize("lang", LANGS)
async def test_tapping_ones_own_link_again_says_already_linked(tg: Harness, kz: Kezek, world: World,
                                                               lang: str) -> None:
    """The chat that linked with the token taps it again: "already linked", nothing
    counted (five taps leave the lock-out untouched); another chat is refused; after an unlink the
    used token no longer links."""
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    await tg.press(f"lang:{lang}")
    await tg.send(text=f"/start {token}")
    [target] = await kz.linked_applications(CHAT_ID)
    already = gettext(lang, "Application {number} (child's IIN {iin}) is already linked to this chat.",
                           number=row["number"], iin=mask_iin(row["child_iin"]))
    for _ in range(linking.MAX_FAILURES):
        replies = sent(await tg.send(text=f"/start {token}"))
        assert replies[0].text == already and replies[0].text != linked_text(lang, target)
    assert await kz.link_locked_until(CHAT_ID) is None
    with pytest.raises(LinkFailed):
        await kz.link_by_token(OTHER_CHAT, token)
    assert await links(kz, OTHER_CHAT) == [] and await links(kz) == [row["number"]]
    await kz.unlink(CHAT_ID, target.application_id)
    with pytest.raises(LinkFailed):  # single-use: it linked once
        await kz.link_by_token(CHAT_ID, token)
    assert await links(kz) == []


async def test_ones_own_expired_link_tapped_again_says_already_linked(kz: Kezek, world: World,
                                                                      clock: FrozenClock) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    await kz.link_by_token(CHAT_ID, token)
    clock.advance(days=15)
    for _ in range(linking.MAX_FAILURES):
        assert (await kz.link_by_token(CHAT_ID, token)).already
    assert await kz.link_locked_until(CHAT_ID) is None
    with pytest.raises(LinkFailed):  # an altered one is a failure still
        await kz.link_by_token(CHAT_ID, altered(token, len(token) - 3))


@pytest.mark.parametrize("lang", LANGS)
async def test_an_expired_token_is_refused(tg: Harness, kz: Kezek, world: World, clock: FrozenClock,
                                           lang: str) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    await tg.press(f"lang:{lang}")
    clock.advance(days=14)
    [reply] = sent(await tg.send(text=f"/start {token}"))
    assert reply.text == failed_text(lang) and await links(kz) == []


async def test_a_token_works_until_the_last_second(kz: Kezek, world: World, clock: FrozenClock) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    clock.set((clock.now() + dt.timedelta(days=14)).replace(microsecond=0) - dt.timedelta(seconds=1))
    await kz.link_by_token(CHAT_ID, token)
    assert await links(kz) == [row["number"]]


@pytest.mark.parametrize("lang", LANGS)
async def test_an_altered_token_is_refused_and_logged_without_its_text(
        tg: Harness, kz: Kezek, world: World, lang: str, caplog: pytest.LogCaptureFixture) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    await tg.press(f"lang:{lang}")
    bad = altered(token, len(token) - 3)
    with caplog.at_level(logging.INFO, logger="kezek"):
        [reply] = sent(await tg.send(text=f"/start {bad}"))
    assert reply.text == failed_text(lang) and await links(kz) == []
    refusals = [r.getMessage() for r in caplog.records if "link token refused" in r.getMessage()]
    assert refusals and "bad_signature" in refusals[0]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert bad not in logged and token not in logged and row["email"] not in logged
    # The genuine token still works: the failed try used nothing up.
    await kz.link_by_token(CHAT_ID, token)
    assert await links(kz) == [row["number"]]


@pytest.mark.parametrize("garbage", ["x", "not a token at all", "A" * 64, "A" * 200, "!!!!"])
async def test_malformed_tokens_get_the_same_answer(tg: Harness, kz: Kezek, world: World, garbage: str) -> None:
    await one_app(world)
    await tg.press("lang:kk")
    [reply] = sent(await tg.send(text=f"/start {garbage}"))
    assert reply.text == failed_text("kk")


async def test_a_token_of_another_purpose_is_refused(kz: Kezek, world: World, clock: FrozenClock) -> None:
    row = await one_app(world)
    ident = await app_id(kz, row["number"])
    signer = await kz.signer()
    referral_like = referral_token(signer, ident)  # genuine, our key, the same id: but a referral's
    with pytest.raises(TokenError) as info:
        signer.verify("link", referral_like, now=clock.now())
    assert info.value.reason == "wrong_purpose"
    with pytest.raises(LinkFailed):
        await kz.link_by_token(CHAT_ID, referral_like)
    assert await links(kz) == []


async def test_a_token_naming_no_application_is_refused(kz: Kezek, world: World, clock: FrozenClock) -> None:
    await one_app(world)
    token = deep_link.link_token(await kz.signer(), 987654, clock.now() + dt.timedelta(days=1), "a@example.kz")
    with pytest.raises(LinkFailed):
        await kz.link_by_token(CHAT_ID, token)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_token_of_an_application_linked_elsewhere_is_refused(tg: Harness, kz: Kezek, world: World,
                                                                     lang: str) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    # The applicant linked from their own chat with /link (their phone) ...
    await kz.link_by_contact(OTHER_CHAT, row["number"], row["child_iin"], row["phone"], OTHER_CHAT, OTHER_CHAT)
    # ... so the link in the mailbox does not add another chat.
    await tg.press(f"lang:{lang}")
    [reply] = sent(await tg.send(text=f"/start {token}"))
    assert reply.text == failed_text(lang)
    assert await links(kz) == [] and await links(kz, OTHER_CHAT) == [row["number"]]
    # The applicant's own chat may still tap it: it is told it is linked already, and nothing counts.
    for _ in range(linking.MAX_FAILURES):
        assert (await kz.link_by_token(OTHER_CHAT, token)).already
    assert await kz.link_locked_until(OTHER_CHAT) is None
    # The token is used up: once the applicant's chat unlinks, it links no chat.
    await kz.unlink(OTHER_CHAT, await app_id(kz, row["number"]))
    with pytest.raises(LinkFailed):
        await kz.link_by_token(CHAT_ID, token)


async def test_a_second_parent_still_links_with_link_after_the_token(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    await kz.link_by_token(CHAT_ID, await token_for(kz, row["number"]))
    await kz.link_by_contact(OTHER_CHAT, row["number"], row["child_iin"], row["phone"], OTHER_CHAT, OTHER_CHAT)
    assert await links(kz) == await links(kz, OTHER_CHAT) == [row["number"]]


async def test_failed_tokens_count_for_the_lock_out(tg: Harness, kz: Kezek, world: World,
                                                    clock: FrozenClock) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    await tg.press("lang:ru")
    for i in range(linking.MAX_FAILURES - 1):
        [reply] = sent(await tg.send(text=f"/start {altered(token, i + 3)}"))
        assert reply.text == failed_text("ru")
    # The fifth failure locks the chat; the genuine token is then refused too, until the lock ends.
    [reply] = sent(await tg.send(text=f"/start {altered(token, 10)}"))
    until = await kz.link_locked_until(CHAT_ID)
    assert until is not None and reply.text == locked_text("ru", until)
    [reply] = sent(await tg.send(text=f"/start {token}"))
    assert reply.text == locked_text("ru", until) and await links(kz) == []
    with pytest.raises(LinkLocked):
        await kz.link_by_token(CHAT_ID, token)
    clock.set(until)
    await kz.link_by_token(CHAT_ID, token)
    assert await links(kz) == [row["number"]]


async def test_two_chats_racing_with_one_token_link_one(kz: Kezek, world: World) -> None:
    row = await one_app(world)
    token = await token_for(kz, row["number"])
    results = await asyncio.gather(kz.link_by_token(CHAT_ID, token), kz.link_by_token(OTHER_CHAT, token),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], LinkFailed), results
    assert len(await links(kz)) + len(await links(kz, OTHER_CHAT)) == 1
    async with kz.reading(with_calendar=False) as ctx:
        used = (await ctx.session.execute(select(UsedToken))).scalars().all()
    assert len(used) == 1 and used[0].subject_id == await app_id(kz, row["number"])
    assert token not in {u.digest for u in used}  # the token itself is not stored


async def test_plain_start_still_shows_the_picker_and_links_nothing(tg: Harness, kz: Kezek, world: World) -> None:
    await one_app(world)
    [reply] = sent(await tg.send(text="/start"))
    # Kazakh above Russian, as state services put them
    assert reply.text == "\n".join(gettext(lang, "Please choose a language:") for lang in ("kk", "ru"))
    assert await links(kz) == [] and await kz.link_locked_until(CHAT_ID) is None


@pytest.mark.parametrize("lang", LANGS)
async def test_a_new_address_revokes_the_old_link_and_gets_a_link_of_its_own(
        tg: Harness, kz: Kezek, world: World, clock: FrozenClock, tmp_path: Path, lang: str) -> None:
    """The registry corrects the application's e-mail: the link mailed to the old address (a
    mistyped one: someone else's mailbox) no longer links, and the new address gets its own."""
    row = await one_app(world)
    await drain_mail(kz, tmp_path, BotUsername("kezek_bot"))
    [old_mail] = mails_to(tmp_path, row["email"])
    [old_token, _] = LINK_RE.findall(old_mail.get_body(("plain",)).get_content())

    clock.advance(dt.timedelta(days=1))
    new_address = "corrected." + row["email"]
    report = await kz.import_applications([{**row, "email": new_address}])
    assert report.updated == 1
    await kz.import_applications([{**row, "email": new_address}])  # the same load again: no second e-mail
    await drain_mail(kz, tmp_path, BotUsername("kezek_bot"))
    [new_mail] = mails_to(tmp_path, new_address)
    [new_token, _] = LINK_RE.findall(new_mail.get_body(("plain",)).get_content())
    assert new_token != old_token

    await tg.press(f"lang:{lang}")
    [reply] = sent(await tg.send(text=f"/start {old_token}"))
    assert reply.text == failed_text(lang)
    assert await links(kz) == []
    await tg.send(text=f"/start {new_token}")
    assert await links(kz) == [row["number"]]


async def test_no_new_registration_email_for_an_application_already_linked(
        kz: Kezek, world: World, tmp_path: Path) -> None:
    row = await one_app(world)
    await kz.link_by_token(CHAT_ID, await token_for(kz, row["number"]))
    await kz.import_applications([{**row, "email": "other." + row["email"]}])
    assert [n.dedupe_key for n in await registration_notices(kz)] == [
        deep_link.registration_key(await app_id(kz, row["number"]))]
