"""Claiming a seat from the chat (handlers/claim.py, handlers/seats.py, services/claiming.py),
through the real Dispatcher, in both languages: the seats list, the preview, the confirmation, and
every press that must change nothing (forged, stale, repeated, outside the window, too late)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiogram.methods import TelegramMethod
from aiogram.types import CallbackQuery, Chat, Message, Update
from sqlalchemy import func, select

from bot import i18n
from handlers.claim import ClaimCallback, SeatsCallback
from services.clock import FrozenClock
from services.errors import NotLinked, OfferExpired, SeatNotAvailable
from services.kezek import Kezek
from storage.models import Referral
from tests.conftest import World, almaty
from tests.test_bot_start import BOT_USER, CHAT_ID, Harness, answers, edits, inline_buttons, link, sent

OTHER_CHAT = 2002


async def referrals(kz: Kezek) -> int:
    async with kz.reading() as ctx:
        return int((await ctx.session.execute(select(func.count()).select_from(Referral))).scalar_one())


async def press_from(tg: Harness, chat_id: int, data: str) -> list[TelegramMethod[Any]]:
    """A button press from another chat (a forged or replayed callback)."""
    msg = Message(message_id=77, date=dt.datetime.now(dt.UTC), chat=Chat(id=chat_id, type="private"),
                  from_user=BOT_USER, text="…")
    cb = CallbackQuery(id="forged", from_user=tg.user("ru", user_id=chat_id), chat_instance="ci",
                       message=msg, data=data)
    return await tg._feed(Update(update_id=9999, callback_query=cb))


@pytest.fixture
async def offered(kz: Kezek, world: World) -> dict[str, Any]:
    """The first in line, linked to CHAT_ID, with the seat of KG1 offered to it."""
    first, second = world.row(), world.row()
    await world.apps(first, second)
    app_id = await link(kz, first)
    await world.publish(1, "KG1")
    return {"row": first, "second": second, "app_id": app_id}


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_claim_an_offered_seat(tg: Harness, kz: Kezek, offered: dict[str, Any], lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    app_id = offered["app_id"]
    [listing] = sent(await tg.press(SeatsCallback(app=app_id).pack()))
    assert offered["row"]["number"] in listing.text
    assert "Ясли-сад №1" in listing.text or "№1 бөбекжай-бақша" in listing.text
    assert i18n.gettext(lang, "offered to you in queue order") in listing.text
    [(label, data)] = inline_buttons(listing.reply_markup)
    step = ClaimCallback.unpack(data)
    assert (step.app, step.step) == (app_id, "p")

    [preview] = edits(await tg.press(data))
    assert i18n.gettext(lang, "Confirm the claim?") in preview.text
    # Monday 7 September 2026 10:00: the offer lives until 20:00 today; the show-up deadline is
    # 5 working days later.
    assert i18n.format_deadline(lang, almaty(2026, 9, 7, 20, 0)) in preview.text
    assert await referrals(kz) == 0  # a preview changes nothing
    confirm = [d for _, d in inline_buttons(preview.reply_markup) if d.startswith("claim:")]
    assert len(confirm) == 1 and ClaimCallback.unpack(confirm[0]).step == "c"

    calls = await tg.press(confirm[0])
    [done] = edits(calls)
    assert i18n.gettext(lang, "Referral issued for application {number}: {kindergarten}.",
                        number=offered["row"]["number"],
                        kindergarten="Ясли-сад №1" if lang == "ru" else "№1 бөбекжай-бақша") in done.text
    assert await referrals(kz) == 1
    view = await kz.queue_view(offered["row"]["number"])
    assert view.state == "referred" and view.referral is not None
    assert view.referral.confirmed_by == f"telegram:{CHAT_ID}"

    # The same press again: a clear answer, no second referral.
    again = await tg.press(confirm[0])
    [alert] = answers(again)
    assert alert.show_alert and alert.text == i18n.gettext(lang, "The child already holds a referral.")
    assert await referrals(kz) == 1


async def test_forged_press_for_another_chats_application(tg: Harness, kz: Kezek, offered: dict[str, Any]) -> None:
    app_id = offered["app_id"]
    seat_id = (await kz.claim_choices(CHAT_ID, app_id)).choices[0].seat_id
    for data in (SeatsCallback(app=app_id).pack(), ClaimCallback(app=app_id, seat=seat_id, step="p").pack(),
                 ClaimCallback(app=app_id, seat=seat_id, step="c").pack()):
        calls = await press_from(tg, OTHER_CHAT, data)
        [alert] = answers(calls)
        assert alert.show_alert and alert.text == i18n.error_text("ru", NotLinked())
        assert not sent(calls) and not edits(calls)
    assert await referrals(kz) == 0
    # An application id that does not exist at all gets the same answer.
    [alert] = answers(await tg.press(ClaimCallback(app=999999, seat=seat_id, step="c").pack()))
    assert alert.text == i18n.error_text("ru", NotLinked())


async def test_someone_elses_offered_seat_is_not_available(tg: Harness, kz: Kezek, world: World,
                                                           offered: dict[str, Any]) -> None:
    # The second in line links its own application and tries to claim the seat offered to the first.
    second_id = await link(kz, offered["second"], OTHER_CHAT)
    seat_id = (await kz.claim_choices(CHAT_ID, offered["app_id"])).choices[0].seat_id
    calls = await press_from(tg, OTHER_CHAT, ClaimCallback(app=second_id, seat=seat_id, step="c").pack())
    [alert] = answers(calls)
    assert alert.show_alert and alert.text == i18n.error_text("ru", SeatNotAvailable())
    assert await referrals(kz) == 0


async def test_claim_outside_the_window_changes_nothing(tg: Harness, kz: Kezek, clock: FrozenClock,
                                                        offered: dict[str, Any]) -> None:
    options = await kz.claim_choices(CHAT_ID, offered["app_id"])
    seat_id = options.choices[0].seat_id
    clock.set(almaty(2026, 9, 7, 8, 30))  # the same Monday, before the window opens
    calls = await tg.press(ClaimCallback(app=offered["app_id"], seat=seat_id, step="c").pack())
    [alert] = answers(calls)
    assert alert.show_alert and "09:00" in alert.text
    assert await referrals(kz) == 0
    [listing] = sent(await tg.press(SeatsCallback(app=offered["app_id"]).pack()))
    assert i18n.gettext("ru", "Seats are claimed on working days from {opens} to {closes}. The next window "
                              "opens {at}.", opens="09:00", closes="20:00",
                        at=i18n.format_datetime("ru", almaty(2026, 9, 7, 9, 0))) in listing.text


async def test_expired_offer_cannot_be_claimed(tg: Harness, kz: Kezek, clock: FrozenClock,
                                               offered: dict[str, Any]) -> None:
    seat_id = (await kz.claim_choices(CHAT_ID, offered["app_id"])).choices[0].seat_id
    clock.set(almaty(2026, 9, 8, 10, 0))  # the next day, before any sweep ran
    [alert] = answers(await tg.press(ClaimCallback(app=offered["app_id"], seat=seat_id, step="c").pack()))
    assert alert.show_alert and alert.text == i18n.error_text(
        "ru", OfferExpired(expired_at=almaty(2026, 9, 7, 20, 0).astimezone(dt.UTC).replace(tzinfo=None).isoformat()))
    assert await referrals(kz) == 0


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_seats_lists_state_order_seats(tg: Harness, kz: Kezek, world: World, clock: FrozenClock,
                                             lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    [hint] = sent(await tg.send(lang, text="/seats"))
    assert hint.text == i18n.gettext(lang, "No application is linked to this chat yet. To link one, send /link.")
    old = world.row(birth_date=dt.date(2022, 5, 1))
    young = world.row(birth_date=dt.date(2024, 5, 1))
    await world.apps(old, young)
    old_id = await link(kz, old)
    await link(kz, young)
    await world.publish(2, "PRIV", birth_year=2022)
    replies = sent(await tg.send(lang, text=i18n.gettext(lang, "Available seats")))
    assert len(replies) == 2
    old_reply = next(r for r in replies if old["number"] in r.text)
    young_reply = next(r for r in replies if young["number"] in r.text)
    assert i18n.gettext(lang, "state order in a private kindergarten") in old_reply.text
    [(label, data)] = inline_buttons(old_reply.reply_markup)
    assert i18n.ngettext(lang, "{count} seat", "{count} seats", 2, count="2") in label
    assert young_reply.reply_markup is None
    assert i18n.gettext(lang, "No state-order seats in private kindergartens are open to your child "
                              "right now.") in young_reply.text
    # Claim one of them through the preview.
    [preview] = edits(await tg.press(data))
    confirm = [d for _, d in inline_buttons(preview.reply_markup) if d.startswith("claim:")]
    await tg.press(confirm[0])
    assert (await kz.queue_view(old["number"])).state == "referred"
    assert old_id


def test_callback_data_fits_telegram() -> None:
    big = 2**53
    assert len(ClaimCallback(app=big, seat=big, step="c").pack().encode()) <= 64
    assert len(SeatsCallback(app=big).pack().encode()) <= 64
