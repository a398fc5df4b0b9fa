"""Kindergarten staff in the bot (services/staff.py, handlers/staff.py), through the real
Dispatcher: an operator's one-time invitation binds an account to a kindergarten; its staff open a
referral from its code and record, in one tap, that the child came (admitted; the parent told) or
has not come yet (the parent told until when it holds); nobody else sees more than the public page."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiogram.methods import SetMyCommands, TelegramMethod
from aiogram.types import BotCommandScopeChat
from sqlalchemy import select

from handlers.callbacks import StaffCallback
from handlers.views.referral_pdf import verdict_text
from locales import gettext
from locales.errors import error_text
from services.clock import FrozenClock
from services.errors import NotStaff, StaffInviteInvalid
from services.kezek import Kezek
from services.referral_check import Verdict
from storage.models import AuditEntry, Delivery, Referral
from storage.vocab import ReferralStatus
from tests.support.telegram import Chats, Harness, answers, edits, sent
from tests.support.world import World, almaty, outbox

STAFF, OTHER_STAFF, STRANGER = 7101, 7102, 7103


async def as_user(tg: Harness, user_id: int, text: str, lang: str = "ru") -> list[TelegramMethod[Any]]:
    return await Chats(tg).text(user_id, text, lang)


async def press_as(tg: Harness, user_id: int, data: str, lang: str = "ru") -> list[TelegramMethod[Any]]:
    return await Chats(tg).press(user_id, data, lang)


async def issued(world: World) -> tuple[Any, str, str]:
    """A referral to the world's kindergarten: (referral, its code, the kindergarten's code)."""
    row = world.row()
    row["child_name"] = "Абенова Айсулу"
    [number] = await world.apps(row)
    published = await world.publish()
    seat = next(s for _, s, n in published.offers if n == number)
    [ref] = await world.kz.claim(number, seat, confirmed_by="telegram:1")
    document = await world.kz.referral_document(ref.id)
    return ref, document.token, document.facts.kindergarten.code


async def bind(tg: Harness, kz: Kezek, kindergarten: str, user_id: int, lang: str = "ru") -> list[TelegramMethod[Any]]:
    invitation = await kz.invite_staff(kindergarten)
    return await as_user(tg, user_id, f"/start {invitation.token}", lang)


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_an_invitation_binds_once_and_the_staff_admit_in_one_tap(
        tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    ref, code, kindergarten = await issued(world)
    invitation = await kz.invite_staff(kindergarten)
    calls = await as_user(tg, STAFF, f"/start {invitation.token}", lang)
    [welcome] = sent(calls)
    # The staff member's own menu, in this chat only: /desk first, in the chat's language.
    [menu] = [c for c in calls if isinstance(c, SetMyCommands)]
    assert isinstance(menu.scope, BotCommandScopeChat) and menu.scope.chat_id == STAFF
    assert menu.commands[0].command == "desk" and menu.commands[0].description == gettext(
        lang, "referrals waiting for a child (kindergarten staff)")
    assert welcome.text.startswith(gettext(
        lang, "You are now staff of {kindergarten} in Kezek. When a parent brings a referral, scan its QR "
              "code with your phone and press «Open in Telegram»: the referral opens here in full, and the "
              "child's arrival is recorded with one tap.", kindergarten=invitation.kindergarten.name(lang)))
    assert "/desk" in welcome.text
    # The same link again, by anyone: it worked once.
    [again] = sent(await as_user(tg, STRANGER, f"/start {invitation.token}", lang))
    assert again.text == error_text(lang, StaffInviteInvalid())

    # The staff member opens the referral from its code: in full, with the two buttons.
    [card] = sent(await as_user(tg, STAFF, f"/start {code}", lang))
    facts = (await kz.referral_document(ref.id)).facts
    assert card.text.startswith(verdict_text(lang, Verdict("valid", facts)))
    assert "Абенова Айсулу" in card.text and facts.application in card.text and facts.child_iin_masked in card.text
    buttons = [b.callback_data for row in card.reply_markup.inline_keyboard for b in row]
    assert buttons == [StaffCallback(ref=ref.id, act="a").pack(), StaffCallback(ref=ref.id, act="n").pack()]

    calls = await press_as(tg, STAFF, StaffCallback(ref=ref.id, act="a").pack(), lang)
    [alert] = answers(calls)
    assert alert.text == gettext(lang, "The admission is recorded. The parent has been told.")
    [shown] = edits(calls) or sent(calls)
    assert shown.reply_markup is None  # admitted: nothing more to press
    async with kz.reading() as ctx:
        assert (await ctx.session.get(Referral, ref.id)).status == ReferralStatus.ADMITTED
        actors = set((await ctx.session.execute(select(AuditEntry.actor).where(
            AuditEntry.action == "referral.admit"))).scalars())
    assert actors == {f"staff:{STAFF}"}
    assert len(await outbox(kz, "admitted")) == 1  # the parent is told (chat and e-mail copy)


async def test_a_child_not_come_tells_the_parent_and_annuls_nothing(
        tg: Harness, kz: Kezek, world: World) -> None:
    ref, code, kindergarten = await issued(world)
    await bind(tg, kz, kindergarten, STAFF)
    for _ in range(2):  # pressed twice: the parent is told once
        [alert] = answers(await press_as(tg, STAFF, StaffCallback(ref=ref.id, act="n").pack()))
        assert alert.show_alert and "(по времени Астаны)" in alert.text
    [notice] = await outbox(kz, "no_show_reported")
    assert notice.application_id == ref.application_id
    async with kz.reading() as ctx:
        assert (await ctx.session.get(Referral, ref.id)).status == ReferralStatus.ISSUED


async def test_nobody_but_the_kindergartens_staff_sees_the_referral_or_records_anything(
        tg: Harness, kz: Kezek, world: World) -> None:
    ref, code, kindergarten = await issued(world)
    await world.kz.upsert_kindergartens([{"code": "KG-OTHER", "district": "ALM-BOS", "name_ru": "Другой сад",
                                          "name_kk": "Басқа бақша", "languages": "ru,kk"}])
    await bind(tg, kz, "KG-OTHER", OTHER_STAFF)
    refusal = error_text("ru", NotStaff())
    for user in (OTHER_STAFF, STRANGER):
        [answer] = sent(await as_user(tg, user, f"/start {code}"))
        assert answer.text == refusal and "Абенова" not in answer.text and answer.reply_markup is None
        for act in ("a", "n"):
            [alert] = answers(await press_as(tg, user, StaffCallback(ref=ref.id, act=act).pack()))
            assert alert.text == refusal
    # A forged code gets the same answer, and so does a press on an id that does not exist.
    forged = code[:-6] + ("A" if code[-6] != "A" else "B") + code[-5:]  # the MAC changed
    [answer] = sent(await as_user(tg, OTHER_STAFF, f"/start {forged}"))
    assert answer.text == refusal
    [alert] = answers(await press_as(tg, OTHER_STAFF, StaffCallback(ref=10**9, act="a").pack()))
    assert alert.text == refusal
    async with kz.reading() as ctx:
        assert (await ctx.session.get(Referral, ref.id)).status == ReferralStatus.ISSUED
    assert await outbox(kz, "no_show_reported") == [] and await outbox(kz, "admitted") == []


async def test_revoked_staff_and_expired_or_revoked_invitations_open_nothing(
        tg: Harness, kz: Kezek, world: World, clock: FrozenClock) -> None:
    ref, code, kindergarten = await issued(world)
    await bind(tg, kz, kindergarten, STAFF)
    assert [r.user_id for r in await kz.staff_list(kindergarten) if r.kind == "staff"] == [STAFF]
    assert await kz.revoke_staff(kindergarten, user_id=STAFF) == 1
    [answer] = sent(await as_user(tg, STAFF, f"/start {code}"))
    assert answer.text == error_text("ru", NotStaff())

    revoked = await kz.invite_staff(kindergarten)
    assert await kz.revoke_staff(kindergarten, invite_id=revoked.id) == 1
    late = await kz.invite_staff(kindergarten, days=1)
    clock.advance(dt.timedelta(days=1, seconds=1))
    for invitation in (revoked, late):
        [answer] = sent(await as_user(tg, STAFF, f"/start {invitation.token}"))
        assert answer.text == error_text("ru", StaffInviteInvalid())
    assert [r for r in await kz.staff_list(kindergarten)] == []


async def test_two_accounts_racing_with_one_link_bind_one(kz: Kezek, world: World) -> None:
    _ref, _code, kindergarten = await issued(world)
    invitation = await kz.invite_staff(kindergarten)
    results = await asyncio.gather(*(kz.accept_staff_invite(invitation.token, 8000 + n) for n in range(6)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, StaffInviteInvalid) for r in results if isinstance(r, BaseException))
    assert len([r for r in await kz.staff_list(kindergarten) if r.kind == "staff"]) == 1


async def test_the_desk_lists_the_waiting_referrals_soonest_first_and_opens_each(
        tg: Harness, kz: Kezek, world: World, clock: FrozenClock) -> None:
    first, _code, kindergarten = await issued(world)
    clock.advance(dt.timedelta(days=1))
    second, _code2, _ = await issued(world)
    await bind(tg, kz, kindergarten, STAFF, "kk")
    [listing] = sent(await as_user(tg, STAFF, "/desk", "kk"))
    assert listing.text.startswith(gettext("kk", "Referrals waiting for a child, the soonest deadline first:"))
    assert listing.text.index(f"№{first.id}:") < listing.text.index(f"№{second.id}:")
    assert "(Астана уақытымен)" in listing.text
    buttons = [b.callback_data for row in listing.reply_markup.inline_keyboard for b in row]
    assert buttons == [StaffCallback(ref=first.id, act="o").pack(), StaffCallback(ref=second.id, act="o").pack()]
    [card] = sent(await press_as(tg, STAFF, buttons[1], "kk"))
    assert "Абенова Айсулу" in card.text and card.reply_markup is not None

    await press_as(tg, STAFF, StaffCallback(ref=first.id, act="a").pack(), "kk")  # admitted: off the desk
    [listing] = sent(await as_user(tg, STAFF, "/desk", "kk"))
    assert f"№{first.id}:" not in listing.text and f"№{second.id}:" in listing.text
    # A parent or a stranger has no desk.
    [answer] = sent(await as_user(tg, STRANGER, "/desk"))
    assert answer.text == error_text("ru", NotStaff())


async def test_an_invitation_e_mailed_carries_its_link_and_leaves_no_token_behind(
        kz: Kezek, world: World, tmp_path: Any) -> None:
    from aiogram import Bot

    from bot.delivery.deeplinks import BotUsername
    from bot.delivery.sender import SendPolicy, drain_once
    from services.email import FolderSender
    from services.errors import InvalidEmail

    _ref, _code, kindergarten = await issued(world)
    with pytest.raises(InvalidEmail):  # checked before anything is written
        await kz.invite_staff(kindergarten, email="not an address")
    invitation = await kz.invite_staff(kindergarten, email="Zhanar.Kg1@Example.kz")
    usernames = BotUsername("kezek_bot")
    usernames.attach(Bot("42:TEST"))
    while await drain_once(kz, None, FolderSender(kz.clock, tmp_path), SendPolicy(usernames=usernames)):
        pass
    from email import message_from_bytes, policy

    mails = [message_from_bytes(m.read_bytes(), policy=policy.default) for m in tmp_path.glob("*.eml")]
    [mail] = [m for m in mails if str(m["To"]).lower() == "zhanar.kg1@example.kz"]
    text = mail.get_body(("plain",)).get_content()
    assert f"https://t.me/kezek_bot?start={invitation.token}" in text
    [row] = await outbox(kz, "staff_invite")
    assert row.payload["code"] == "******" and invitation.token not in str(row.payload)
    assert len([r for r in await kz.staff_list(kindergarten) if r.kind == "invite"]) == 1


async def test_the_morning_digest_tells_the_staff_of_deadlines_ending_by_the_next_working_day(
        kz: Kezek, world: World, clock: FrozenClock) -> None:
    from services.notifications import EMAIL, TELEGRAM

    ref, _code, kindergarten = await issued(world)  # Monday: the show-up deadline ends next Monday
    await kz.accept_staff_invite((await kz.invite_staff(kindergarten)).token, STAFF)
    await kz.accept_staff_invite((await kz.invite_staff(kindergarten)).token, OTHER_STAFF)
    await kz.revoke_staff(kindergarten, user_id=OTHER_STAFF)
    clock.set(almaty(2026, 9, 9, 8, 0))  # Wednesday: Monday is beyond Thursday
    assert await kz.staff_digest() == 0
    clock.set(almaty(2026, 9, 12, 8, 0))  # Saturday: no digest on a day off
    assert await kz.staff_digest() == 0
    clock.set(almaty(2026, 9, 11, 8, 0))  # Friday: the next working day is Monday
    assert await kz.staff_digest() == 1
    assert await kz.staff_digest() == 1  # run again (a restart, a second instance): still one notice
    [notice] = await outbox(kz, "staff_digest")
    assert notice.payload["chat_id"] == STAFF and notice.payload["count"] == 1
    await kz.route_notices()
    async with kz.reading() as ctx:
        routes = {(d.channel, d.target) for d in (await ctx.session.execute(
            select(Delivery).where(Delivery.outbox_id == notice.id))).scalars()}
    assert routes == {(TELEGRAM, str(STAFF))} and EMAIL not in {c for c, _ in routes}
    await kz.admit(ref.id)
    clock.set(almaty(2026, 9, 14, 8, 0))  # Monday: nothing waits any more
    assert await kz.staff_digest() == 0
