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

from handlers.callbacks import ClaimCallback, SeatsCallback
from locales import gettext, ngettext
from locales.errors import error_text
from locales.formats import format_datetime, format_deadline, zone_text
from services.clock import FrozenClock
from services.errors import NotLinked, OfferExpired, SeatNotAvailable
from services.kezek import Kezek
from storage.models import Referral
from tests.support.telegram import BOT_USER, CHAT_ID, OTHER_CHAT, Harness, answers, edits, inline_buttons, sent
from tests.support.world import World, almaty, link


async def referrals(kz: Kezek) -> int:
    async with kz.reading() as ctx:
        return int((await ctx.session.execute(select(func.count()).select_from(Referral))).scalar_one())


async def press_from(tg: Harness, chat_id: int, data: str) -> list[TelegramMethod[Any]]:
    """A button press from another chat (a forged or replayed callback)."""
    msg = Message(message_id=77, date=dt.datetime.now(dt.UTC), chat=Chat(id=chat_id, type="private"),
                  from_user=BOT_USER, text="…")
    cb = CallbackQuery(id="forged", from_user=tg.user("ru", user_id=chat_id), chat_instance="ci",
                       message=msg, data=data)
    return await tg.feed(Update(update_id=9999, callback_query=cb))


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
    assert gettext(lang, "offered to you in queue order") in listing.text
    [(label, data)] = inline_buttons(listing.reply_markup)
    step = ClaimCallback.unpack(data)
    assert (step.app, step.step) == (app_id, "p")

    [preview] = edits(await tg.press(data))
    assert gettext(lang, "Confirm the claim?") in preview.text
    # Monday 7 September 2026 10:00: the offer lives until 20:00 today; the show-up deadline is
    # 5 working days later.
    assert format_deadline(lang, almaty(2026, 9, 7, 20, 0)) in preview.text
    # The zone once, after the first deadline.
    assert preview.text.count(zone_text(lang)) == 1
    assert format_deadline(lang, almaty(2026, 9, 7, 20, 0), zone="local") in preview.text
    assert await referrals(kz) == 0  # a preview changes nothing
    confirm = [d for _, d in inline_buttons(preview.reply_markup) if d.startswith("claim:")]
    assert len(confirm) == 1 and ClaimCallback.unpack(confirm[0]).step == "c"

    calls = await tg.press(confirm[0])
    [done] = edits(calls)
    assert gettext(lang, "Referral issued for application {number}: {kindergarten}.",
                        number=offered["row"]["number"],
                        kindergarten="Ясли-сад №1" if lang == "ru" else "№1 бөбекжай-бақша") in done.text
    assert await referrals(kz) == 1
    view = await kz.queue_view(offered["row"]["number"])
    assert view.state == "referred" and view.referral is not None
    assert view.referral.confirmed_by == f"telegram:{CHAT_ID}"

    # The same press again: a clear answer, no second referral.
    again = await tg.press(confirm[0])
    [alert] = answers(again)
    assert alert.show_alert and alert.text == gettext(lang, "The child already holds a referral.")
    assert await referrals(kz) == 1


async def test_forged_press_for_another_chats_application(tg: Harness, kz: Kezek, offered: dict[str, Any]) -> None:
    app_id = offered["app_id"]
    seat_id = (await kz.claim_choices(CHAT_ID, app_id)).choices[0].seat_id
    for data in (SeatsCallback(app=app_id).pack(), ClaimCallback(app=app_id, seat=seat_id, step="p").pack(),
                 ClaimCallback(app=app_id, seat=seat_id, step="c").pack()):
        calls = await press_from(tg, OTHER_CHAT, data)
        [alert] = answers(calls)
        assert alert.show_alert and alert.text == error_text("ru", NotLinked())
        assert not sent(calls) and not edits(calls)
    assert await referrals(kz) == 0
    # An application id that does not exist at all gets the same answer.
    [alert] = answers(await tg.press(ClaimCallback(app=999999, seat=seat_id, step="c").pack()))
    assert alert.text == error_text("ru", NotLinked())


async def test_someone_elses_offered_seat_is_not_available(tg: Harness, kz: Kezek, world: World,
                                                           offered: dict[str, Any]) -> None:
    # The second in line links its own application and tries to claim the seat offered to the first.
    second_id = await link(kz, offered["second"], OTHER_CHAT)
    seat_id = (await kz.claim_choices(CHAT_ID, offered["app_id"])).choices[0].seat_id
    calls = await press_from(tg, OTHER_CHAT, ClaimCallback(app=second_id, seat=seat_id, step="c").pack())
    [alert] = answers(calls)
    assert alert.show_alert and alert.text == error_text("ru", SeatNotAvailable())
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
    assert gettext("ru", "Seats are claimed on working days from {opens} to {closes}. The next window "
                              "opens {at}.", opens="09:00", closes="20:00",
                        at=format_datetime("ru", almaty(2026, 9, 7, 9, 0))) in listing.text


async def test_in_the_sandbox_the_refusal_is_followed_by_how_to_move_the_clock(
        tg: Harness, kz: Kezek, clock: FrozenClock, offered: dict[str, Any]) -> None:
    """`kezek demo` with a real bot: outside the window the parent is told, after the refusal, when
    the window opens and the command that moves the sandbox clock there; production says nothing more."""
    from bot.sandbox.hint import WindowHintMiddleware
    from bot.telegram.app import build_dispatcher

    sandbox = Harness(build_dispatcher(kz, extra=[WindowHintMiddleware(clock)]))
    seat_id = (await kz.claim_choices(CHAT_ID, offered["app_id"])).choices[0].seat_id
    clock.set(almaty(2026, 9, 7, 8, 30))  # the Monday, half an hour before the window opens
    press = ClaimCallback(app=offered["app_id"], seat=seat_id, step="c").pack()
    assert not sent(await tg.press(press))  # production: the alert only
    for lang in ("ru", "kk"):
        calls = await sandbox.press(press, language_code=lang)
        [alert] = answers(calls)
        assert alert.show_alert and "09:00" in alert.text
        [hint] = sent(calls)
        assert format_datetime(lang, almaty(2026, 9, 7, 9, 0), zone="local") in hint.text
        assert "kezek sandbox clock --advance 30m" in hint.text
    assert await referrals(kz) == 0
    await sandbox.bot.session.close()


async def test_expired_offer_cannot_be_claimed(tg: Harness, kz: Kezek, clock: FrozenClock,
                                               offered: dict[str, Any]) -> None:
    seat_id = (await kz.claim_choices(CHAT_ID, offered["app_id"])).choices[0].seat_id
    clock.set(almaty(2026, 9, 8, 10, 0))  # the next day, before any sweep ran
    [alert] = answers(await tg.press(ClaimCallback(app=offered["app_id"], seat=seat_id, step="c").pack()))
    assert alert.show_alert and alert.text == error_text(
        "ru", OfferExpired(expired_at=almaty(2026, 9, 7, 20, 0).astimezone(dt.UTC).replace(tzinfo=None).isoformat()))
    assert await referrals(kz) == 0


@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_seats_lists_state_order_seats(tg: Harness, kz: Kezek, world: World, clock: FrozenClock,
                                             lang: str) -> None:
    await kz.set_chat_language(CHAT_ID, lang)
    [hint] = sent(await tg.send(lang, text="/seats"))
    assert hint.text == gettext(lang, "No application is linked to this chat yet. To link one, send /link.")
    old = world.row(birth_date=dt.date(2022, 5, 1))
    young = world.row(birth_date=dt.date(2024, 5, 1))
    await world.apps(old, young)
    old_id = await link(kz, old)
    await link(kz, young)
    await world.publish(2, "PRIV", birth_year=2022)
    replies = sent(await tg.send(lang, text=gettext(lang, "Available seats")))
    assert len(replies) == 2
    old_reply = next(r for r in replies if old["number"] in r.text)
    young_reply = next(r for r in replies if young["number"] in r.text)
    assert gettext(lang, "state order in a private kindergarten") in old_reply.text
    [(label, data)] = inline_buttons(old_reply.reply_markup)
    assert ngettext(lang, "{count} seat", "{count} seats", 2, count="2") in label
    assert young_reply.reply_markup is None
    assert gettext(lang, "No state-order seats in private kindergartens are open to your child "
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


async def test_the_seats_screen_read_in_one_round_trip_equals_the_rules_read(
        kz: Kezek, clock: FrozenClock, world: World) -> None:
    """``state_order_choices`` (one hot read) against the same screen read through the ORM and
    ``offers.available_seats``: a district with its own profile (a later window, private seats
    from age 2) beside the default one, groups in two languages and two kindergartens, a child
    too young, one referred, and outside the window (the next window's moment)."""
    world = await World(kz, clock).setup(profile={"window_open": "10:30", "window_close": "18:00",
                                                  "private_min_age_years": 2})
    await kz.upsert_kindergartens([
        {"code": "APRIV", "district": "ALM-BOS", "name_ru": "Частный сад «Айгөлек»",
         "name_kk": "«Айгөлек» жеке балабақшасы", "kind": "private_state_order", "languages": "ru,kk",
         "address": "ул. Жандосова, 5"},
        {"code": "MPRIV", "district": "ALM-MED", "name_ru": "Частный сад «Ақбота»",
         "name_kk": "«Ақбота» жеке балабақшасы", "kind": "private_state_order", "languages": "ru"}])
    rows = [world.row(birth_date=dt.date(2022, 5, 1)), world.row(birth_date=dt.date(2024, 2, 1)),
            world.row(birth_date=dt.date(2025, 1, 1)), world.row(birth_date=dt.date(2022, 3, 1), district="ALM-MED"),
            world.row(birth_date=dt.date(2023, 1, 1), district="ALM-MED")]
    await world.apps(*rows)
    for i, row in enumerate(rows):
        await link(kz, row, chat_id=CHAT_ID if i < 3 else CHAT_ID + 1)
    for kg, year, lang, count in (("PRIV", 2022, "ru", 2), ("PRIV", 2022, "kk", 1), ("APRIV", 2024, "ru", 1),
                                  ("MPRIV", 2022, "ru", 3)):
        await world.publish(count, kg, birth_year=year, language=lang)
    seats = await kz.state_order_choices(CHAT_ID)
    assert [len(c.choices) for c in seats] == [3, 3, 0]  # two groups of PRIV, one of APRIV; the baby none
    assert sorted(c.count for c in seats[0].choices) == [1, 1, 2]
    for moment in (almaty(2026, 9, 7, 10, 0), almaty(2026, 9, 7, 12, 0), almaty(2026, 9, 5, 12, 0)):
        clock.set(moment)
        for chat in (CHAT_ID, CHAT_ID + 1, CHAT_ID + 2):
            assert await kz.state_order_choices(chat) == await kz._state_order_choices_read(chat), (moment, chat)
    # One referred: waiting no more, no seats.
    clock.set(almaty(2026, 9, 7, 12, 0))
    [medeu, _young] = await kz.state_order_choices(CHAT_ID + 1)
    [choice] = medeu.choices
    await kz.claim_seat(CHAT_ID + 1, CHAT_ID + 1, medeu.application_id, choice.seat_id)
    after = await kz.state_order_choices(CHAT_ID + 1)
    assert after == await kz._state_order_choices_read(CHAT_ID + 1)
    assert not after[0].waiting and after[0].choices == []
