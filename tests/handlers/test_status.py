"""/status: the cards, the move of the number and its causes, the states, the History button
(the moves as text and a PNG chart) and the forecast — through the real Dispatcher with the
mocked Bot of tests/support/telegram.py, in both languages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiogram.methods import SendDocument, SendMessage, SendPhoto, TelegramMethod
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select

from bot.telegram.app import build_dispatcher
from handlers.callbacks import HistoryCallback, ReferralPdfCallback, SeatsCallback
from handlers.status import month_text
from handlers.views.chart import PNG_SIGNATURE, render_history_png
from locales import gettext, ngettext
from locales.errors import error_text
from locales.formats import format_date, format_deadline
from locales.names import cause_text, privilege_text, status_text
from services import queue
from services import status as st
from services.clock import FrozenClock
from services.errors import NotLinked, ReferralNotFound
from services.kezek import Kezek
from storage.models import Offer, QueueLook, Referral
from tests.support.telegram import CHAT_ID, OTHER_CHAT, Harness, answers, sent
from tests.support.world import World, almaty, link

LANGS = pytest.mark.parametrize("lang", ["ru", "kk"])


def photos(calls: list[TelegramMethod[Any]]) -> list[SendPhoto]:
    return [c for c in calls if isinstance(c, SendPhoto)]


def buttons(message: SendMessage) -> list[tuple[str, str]]:
    markup = message.reply_markup
    assert isinstance(markup, InlineKeyboardMarkup)
    return [(b.text, b.callback_data or "") for row in markup.inline_keyboard for b in row]


async def status(tg: Harness, lang: str) -> list[SendMessage]:
    return sent(await tg.send(lang, text="/status"))


async def claim_first_offer(world: World, number: str) -> Referral:
    pub = await world.publish(1)
    seat = next(s for _, s, n in pub.offers if n == number)
    (ref,) = await world.kz.claim(number, seat, confirmed_by="tg:parent")
    return ref


# --- the card, the move and its causes ----------------------------------------------------------------

@LANGS
async def test_card_shows_the_number_then_the_move_with_its_causes_then_no_move(
        tg: Harness, kz: Kezek, world: World, clock: FrozenClock, lang: str) -> None:
    rows = [world.row() for _ in range(6)]
    a1, a2, *_ = await world.apps(*rows)
    mine = rows[-1]
    app_id = await link(kz, mine)
    await kz.set_chat_language(CHAT_ID, lang)

    [card] = await status(tg, lang)
    first_look = clock.now()
    assert gettext(lang, "Queue number: {number}", number="6") in card.text
    assert gettext(lang, "Application {number}, child's IIN {iin}", number=mine["number"],
                        iin=mine["child_iin"][:2] + "•" * 8 + mine["child_iin"][-2:]) in card.text
    assert mine["child_iin"] not in card.text
    assert ("Бостандық ауданы" if lang == "kk" else "Бостандыкский район") in card.text
    assert gettext(lang, "Preferred kindergartens: {kindergartens}",
                        kindergartens=gettext(lang, "any kindergarten")) in card.text
    assert status_text(lang, "waiting") in card.text
    assert privilege_text(lang, "none") in card.text
    assert buttons(card) == [(gettext(lang, "History"), HistoryCallback(app=app_id).pack())]
    assert not [line for line in card.text.splitlines() if line.startswith("• ")]  # no causes on a first look

    # Ahead of us: a1 takes a referral, a2 is withdrawn.
    clock.advance(dt.timedelta(days=1))
    await kz.withdraw_application(a2)
    await claim_first_offer(world, a1)
    clock.advance(dt.timedelta(hours=1))

    [card] = await status(tg, lang)
    assert gettext(lang, "Queue number: {number}", number="4") in card.text
    assert ngettext(lang, "Up by {count} place since {date} (it was {previous}).",
                         "Up by {count} places since {date} (it was {previous}).", 2, count="2",
                         date=format_date(lang, first_look), previous="6") in card.text
    assert "• " + cause_text(lang, "referral", -1) in card.text
    assert "• " + cause_text(lang, "withdrawn", -1) in card.text
    second_look = clock.now()

    clock.advance(dt.timedelta(hours=1))
    [card] = await status(tg, lang)
    assert gettext(lang, "Queue number: {number}", number="4") in card.text
    assert gettext(lang, "No change since {date}.", date=format_date(lang, second_look)) in card.text
    assert cause_text(lang, "referral", -1) not in card.text
    assert cause_text(lang, "withdrawn", -1) not in card.text


async def test_a_flush_writes_every_pending_look_new_and_changed(kz: Kezek, world: World, clock: FrozenClock) -> None:
    """One flush, one statement: looks of several viewers and applications, new ones and one that
    replaces a stored look, each with its own number and moment."""
    ids = await world.apps(*[world.row() for _ in range(3)])
    async with kz.reading() as ctx:
        app_ids = [(await queue.get_application(ctx.session, n)).id for n in ids]
    looks = kz.buffer_looks(3600)
    early = clock.now()
    looks.add(app_ids[0], "chat:1", 1, early)
    assert await kz.flush_looks() == 1
    later = early + dt.timedelta(hours=2)
    looks.add(app_ids[0], "chat:1", 4, later)  # replaces the stored one
    looks.add(app_ids[0], "chat:2", 5, early)
    looks.add(app_ids[1], "chat:1", 2, later)
    looks.add(app_ids[2], "chat:3", 3, early)
    assert await kz.flush_looks() == 4
    async with kz.reading() as ctx:
        stored = {(r.application_id, r.viewer): (r.number, r.at)
                  for r in (await ctx.session.execute(select(QueueLook))).scalars()}
    assert stored == {(app_ids[0], "chat:1"): (4, later), (app_ids[0], "chat:2"): (5, early),
                      (app_ids[1], "chat:1"): (2, later), (app_ids[2], "chat:3"): (3, early)}


async def test_buffered_looks_show_the_move_at_once_and_are_written_in_one_go(
        tg: Harness, kz: Kezek, world: World, clock: FrozenClock) -> None:
    """The bot process writes the looks of /status in groups (LookBuffer): its next card already
    counts from the pending look, the database gets it at the flush (or when the bot stops), and
    a failed write keeps the looks for the next try."""
    looks = kz.buffer_looks(3600)  # no flush by itself during the test
    rows = [world.row() for _ in range(3)]
    a1, *_ = await world.apps(*rows)
    app_id = await link(kz, rows[-1])

    async def stored() -> list[tuple[int, dt.datetime]]:
        async with kz.reading() as ctx:
            return [(r.number, r.at) for r in (await ctx.session.execute(
                select(QueueLook).where(QueueLook.application_id == app_id))).scalars()]

    [card] = await status(tg, "ru")
    first_look = clock.now()
    assert gettext("ru", "Queue number: {number}", number="3") in card.text
    assert await stored() == []  # pending, not written yet
    clock.advance(dt.timedelta(hours=1))
    [card] = await status(tg, "ru")  # this process counts from its pending look
    assert gettext("ru", "No change since {date}.", date=format_date("ru", first_look)) in card.text

    # The write fails once (the database is away): the look stays pending, then goes in.
    real_unit = kz.unit
    def failing_unit(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database away")
    kz.unit = failing_unit  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await kz.flush_looks()
    kz.unit = real_unit  # type: ignore[method-assign]
    assert looks.get(app_id, f"chat:{CHAT_ID}") == (3, first_look)
    assert await kz.flush_looks() == 1
    assert await stored() == [(3, first_look)]
    assert await kz.flush_looks() == 0

    # Another instance (a fresh facade, no buffer) reads the look from the database.
    clock.advance(dt.timedelta(days=1))
    await kz.withdraw_application(a1)
    other = Harness(build_dispatcher(Kezek(kz.db, clock)))
    [card] = sent(await other.send("ru", text="/status"))
    await other.bot.session.close()
    assert gettext("ru", "Queue number: {number}", number="2") in card.text
    assert ngettext("ru", "Up by {count} place since {date} (it was {previous}).",
                         "Up by {count} places since {date} (it was {previous}).", 1, count="1",
                         date=format_date("ru", first_look), previous="3") in card.text


@LANGS
async def test_menu_button_and_several_children(tg: Harness, kz: Kezek, world: World, clock: FrozenClock,
                                                lang: str) -> None:
    first, second = world.row(preferred=["KG2", "KG1"]), world.row(district="ALM-MED", privilege="first")
    await world.apps(first, second)
    await link(kz, second)  # linked first: its card comes first
    clock.advance(dt.timedelta(minutes=5))
    await link(kz, first)
    await kz.set_chat_language(CHAT_ID, lang)
    cards = sent(await tg.send(lang, text=gettext(lang, "My queue status")))
    assert [c.text.splitlines()[0] for c in cards] == [
        gettext(lang, "Application {number}, child's IIN {iin}", number=r["number"],
                     iin=r["child_iin"][:2] + "•" * 8 + r["child_iin"][-2:]) for r in (second, first)]
    kg1, kg2 = ("№1 бөбекжай-бақша", "№2 бөбекжай-бақша") if lang == "kk" else ("Ясли-сад №1", "Ясли-сад №2")
    assert gettext(lang, "Preferred kindergartens: {kindergartens}",
                        kindergartens=f"{kg2} (KG2), {kg1} (KG1)") in cards[1].text
    assert privilege_text(lang, "first") in cards[0].text
    assert ("Медеу ауданы" if lang == "kk" else "Медеуский район") in cards[0].text


@LANGS
async def test_no_linked_application_gets_a_hint_to_link(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    row = world.row()
    await world.apps(row)
    await link(kz, row, OTHER_CHAT)  # linked elsewhere, not here
    await kz.set_chat_language(CHAT_ID, lang)
    for text in ("/status", gettext(lang, "My queue status")):
        [reply] = sent(await tg.send(lang, text=text))
        assert reply.text == gettext(lang, "No application is linked to this chat yet. To link one, "
                                                "send /link.")
        assert "/link" in reply.text


# --- states -------------------------------------------------------------------------------------------

@LANGS
async def test_states_offer_referral_stop_list(tg: Harness, kz: Kezek, world: World, clock: FrozenClock,
                                               lang: str) -> None:
    row = world.row()
    (number,) = await world.apps(row)
    app_id = await link(kz, row)
    await kz.set_chat_language(CHAT_ID, lang)

    pub = await world.publish(1)
    async with kz.reading() as ctx:
        offer = (await ctx.session.execute(select(Offer).where(Offer.application_id == app_id))).scalar_one()
    [card] = await status(tg, lang)
    assert status_text(lang, "offer_open", offer.expires_at) in card.text
    assert format_deadline(lang, offer.expires_at) in card.text
    assert buttons(card) == [(gettext(lang, "Choose a seat"), SeatsCallback(app=app_id).pack()),
                             (gettext(lang, "History"), HistoryCallback(app=app_id).pack())]

    (ref,) = await kz.claim(number, pub.seat_ids[0], confirmed_by="tg:parent")
    [card] = await status(tg, lang)
    assert status_text(lang, "referred", ref.showup_due_at) in card.text
    assert gettext(lang, "Kindergarten: {kindergarten}",
                        kindergarten=("№1 бөбекжай-бақша" if lang == "kk" else "Ясли-сад №1") + " (KG1)") in card.text
    assert gettext(lang, "Queue number: {number}", number="1") not in card.text
    assert buttons(card) == [(gettext(lang, "Referral (PDF)"), ReferralPdfCallback(app=app_id).pack()),
                             (gettext(lang, "History"), HistoryCallback(app=app_id).pack())]

    # No show-up by the deadline: annulled, back in the queue on the stop-list.
    clock.set(almaty(2026, 9, 15, 10, 0))
    await kz.run_sweeps()
    [card] = await status(tg, lang)
    until = almaty(2026, 9, 30, 0, 0)
    assert status_text(lang, "stop_listed", until) in card.text
    assert format_deadline(lang, until) in card.text  # 29 September, 23:59
    assert gettext(lang, "You are first in the queue: once the stop-list ends, the next suitable seat "
                              "will be offered to you.") in card.text
    assert gettext(lang, "Queue number: {number}", number="1") in card.text


@LANGS
async def test_privilege_documents_due_on_the_card(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    row = world.row(privilege="first")
    (number,) = await world.apps(row)
    await link(kz, row)
    await kz.set_chat_language(CHAT_ID, lang)
    ref = await claim_first_offer(world, number)
    assert ref.docs_due_at is not None
    [card] = await status(tg, lang)
    assert gettext(lang, "Privilege documents are due by {due}.",
                        due=format_deadline(lang, ref.docs_due_at)) in card.text


@LANGS
async def test_the_referral_pdf_again_from_the_card(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    """The PDF sent with "referral issued" may be lost: the card of a referred child sends it again,
    in the chat's language, with a QR code that verifies; after the admission the button answers
    that there is no referral to show, and another family's button is refused."""
    from io import BytesIO

    from pypdf import PdfReader

    mine, theirs = world.row(), world.row()
    (number, _) = await world.apps(mine, theirs)
    app_id = await link(kz, mine)
    their_id = await link(kz, theirs, OTHER_CHAT)
    await kz.set_chat_language(CHAT_ID, lang)
    ref = await claim_first_offer(world, number)

    calls = await tg.press(ReferralPdfCallback(app=app_id).pack(), language_code=lang)
    [ack] = answers(calls)
    assert not ack.show_alert
    [doc] = [c for c in calls if isinstance(c, SendDocument)]
    assert doc.chat_id == CHAT_ID and doc.document.filename.endswith(".pdf")
    assert str(ref.id) in (doc.caption or "")
    text = PdfReader(BytesIO(doc.document.data)).pages[0].extract_text()
    assert gettext(lang, "Referral to a kindergarten") in text
    assert ("№1 бөбекжай-бақша" if lang == "kk" else "Ясли-сад №1") in text
    assert mine["child_iin"] not in text  # masked
    short = (await kz.referral_document(ref.id)).short
    assert short in text.replace("\n", "")  # the code printed beside the QR code
    assert (await kz.verify_referral(short)).state == "valid"

    for data, error in ((ReferralPdfCallback(app=their_id).pack(), NotLinked()),
                        (ReferralPdfCallback(app=987654).pack(), NotLinked())):
        calls = await tg.press(data, language_code=lang)
        [ack] = answers(calls)
        assert ack.show_alert and ack.text == error_text(lang, error)
        assert not [c for c in calls if isinstance(c, SendDocument)]

    await kz.admit(ref.id)
    calls = await tg.press(ReferralPdfCallback(app=app_id).pack(), language_code=lang)
    [ack] = answers(calls)
    assert ack.show_alert and ack.text == error_text(lang, ReferralNotFound())
    assert not [c for c in calls if isinstance(c, SendDocument)]
    [card] = await status(tg, lang)
    assert gettext(lang, "Referral (PDF)") not in [t for t, _ in buttons(card)]


# --- History --------------------------------------------------------------------------------------------

@LANGS
async def test_history_sends_the_moves_and_a_png_chart(tg: Harness, kz: Kezek, world: World,
                                                       clock: FrozenClock, lang: str) -> None:
    rows = [world.row() for _ in range(6)]
    a1, a2, *_ = await world.apps(*rows)
    app_id = await link(kz, rows[-1])
    await kz.set_chat_language(CHAT_ID, lang)
    clock.set(almaty(2026, 9, 9, 10, 0))
    await kz.withdraw_application(a2)
    await claim_first_offer(world, a1)

    calls = await tg.press(HistoryCallback(app=app_id).pack(), language_code=lang)
    [ack] = answers(calls)
    assert not ack.show_alert
    [text] = sent(calls)
    assert text.text.startswith(gettext(lang, "Application {number}: queue number {queue_number} now.",
                                             number=rows[-1]["number"], queue_number="4"))
    day = format_date(lang, dt.date(2026, 9, 9))
    assert f"{day}: " + ngettext(lang, "up by {count} place", "up by {count} places", 2, count="2") in text.text
    assert cause_text(lang, "referral", -1) in text.text
    assert cause_text(lang, "withdrawn", -1) in text.text
    # The registry's load of the queue (before the application was in Kezek) is no move.
    assert cause_text(lang, "arrival", 5) not in text.text
    assert len([line for line in text.text.splitlines() if line.startswith("  • ")]) == 2
    [photo] = photos(calls)
    assert photo.chat_id == CHAT_ID
    assert photo.photo.filename == "history.png"
    assert photo.photo.data.startswith(PNG_SIGNATURE)
    assert rows[-1]["number"] in (photo.caption or "")
    assert photo.caption == gettext(lang, "Queue number of application {number} since {date}",
                                         number=rows[-1]["number"],
                                         date=format_date(lang, dt.date(2026, 9, 7)))


@LANGS
async def test_history_of_an_application_out_of_the_queue(tg: Harness, kz: Kezek, world: World,
                                                          lang: str) -> None:
    row = world.row()
    (number,) = await world.apps(row)
    app_id = await link(kz, row)
    await kz.set_chat_language(CHAT_ID, lang)
    await claim_first_offer(world, number)
    calls = await tg.press(HistoryCallback(app=app_id).pack(), language_code=lang)
    [text] = sent(calls)
    assert text.text == gettext(lang, "Application {number} is not waiting in the queue, so its queue "
                                           "number has no history to show.", number=number)
    assert photos(calls) == []


@LANGS
async def test_forged_history_button_is_refused(tg: Harness, kz: Kezek, world: World, lang: str) -> None:
    mine, theirs = world.row(), world.row()
    await world.apps(mine, theirs)
    await link(kz, mine)
    their_id = await link(kz, theirs, OTHER_CHAT)
    await kz.set_chat_language(CHAT_ID, lang)
    for data in (HistoryCallback(app=their_id).pack(), HistoryCallback(app=987654).pack()):
        calls = await tg.press(data, language_code=lang)
        [ack] = answers(calls)
        assert ack.show_alert
        assert ack.text == error_text(lang, NotLinked())
        assert sent(calls) == [] and photos(calls) == []
    with pytest.raises(NotLinked):
        await kz.status_history(CHAT_ID, their_id)


# --- the forecast ---------------------------------------------------------------------------------------

TODAY = dt.date(2026, 9, 7)


def test_expected_turn_at_the_pace() -> None:
    # 30 places in 90 days: a place every 3 days; from 11 to 1 is 10 places, about 30 days.
    assert st.expected_turn(11, 30, TODAY, 90) == TODAY + dt.timedelta(days=30)
    assert st.expected_turn(2, 90, TODAY, 90) == TODAY + dt.timedelta(days=1)
    assert st.expected_turn(4, 1, TODAY, 90) == TODAY + dt.timedelta(days=270)
    assert st.expected_turn(1, 30, TODAY, 90) is None
    assert st.expected_turn(11, 0, TODAY, 90) is None
    assert st.expected_turn(11, -5, TODAY, 90) is None


def test_make_forecast() -> None:
    est = st.make_forecast(11, -30, TODAY, 90)
    assert (est.kind, est.advanced, est.days, est.expected) == (st.FORECAST_ESTIMATE, 30, 90, dt.date(2026, 10, 7))
    assert st.make_forecast(1, -30, TODAY).kind == st.FORECAST_FIRST
    assert st.make_forecast(11, 0, TODAY).kind == st.FORECAST_UNKNOWN  # the queue did not move
    assert st.make_forecast(11, 4, TODAY).kind == st.FORECAST_UNKNOWN  # it moved back only
    assert st.make_forecast(11, -30, TODAY, days=3).kind == st.FORECAST_TOO_EARLY
    # On the stop-list no offer comes before its end.
    late = st.make_forecast(2, -90, TODAY, 90, not_before=dt.date(2026, 9, 30))
    assert late.expected == dt.date(2026, 9, 30)


@LANGS
async def test_card_forecast_at_the_recent_pace(tg: Harness, kz: Kezek, world: World, clock: FrozenClock,
                                                lang: str) -> None:
    rows = [world.row() for _ in range(6)]
    a1, a2, *_ = await world.apps(*rows)
    await link(kz, rows[-1])
    await kz.set_chat_language(CHAT_ID, lang)
    [card] = await status(tg, lang)
    # Everyone arrived with the registry's load: that is not a move, and it is too early to tell.
    assert gettext(lang, "Forecast: not possible yet, the application joined the queue too recently.") \
        in card.text

    clock.set(almaty(2026, 9, 28, 10, 0))  # 21 days in the queue, and nothing moved
    [card] = await status(tg, lang)
    assert ngettext(lang, "Forecast: not possible yet, the queue ahead of you has not moved forward in "
                               "the last {count} day.",
                         "Forecast: not possible yet, the queue ahead of you has not moved forward in "
                         "the last {count} days.", 21, count="21") in card.text

    clock.set(almaty(2026, 10, 5, 10, 0))
    await kz.withdraw_application(a2)
    await claim_first_offer(world, a1)
    clock.set(almaty(2026, 10, 7, 10, 0))  # 30 days: 2 places up, 3 to go -> 45 days -> 21 Nov
    [card] = await status(tg, lang)
    expected = ngettext(
        lang,
        "Forecast: {period} your number moved up by {count} place; at this pace "
        "your turn may come around {month}. This is an estimate, not a promise.",
        "Forecast: {period} your number moved up by {count} places; at this pace "
        "your turn may come around {month}. This is an estimate, not a promise.",
        2, count="2", period=ngettext(lang, "in the last {count} day", "in the last {count} days", 30,
                                           count="30"),
        month=month_text(lang, dt.date(2026, 11, 21)))
    assert expected in card.text
    # The month in each language's own order and case, lower case mid-sentence; the days with
    # their own plural (not "дн.").
    assert {"ru": "за последние 30 дней ваш номер продвинулся на 2 места; при таком темпе ориентировочный "
                  "срок: ноябрь 2026 г. Это оценка",
            "kk": "соңғы 30 күнде нөміріңіз 2 орынға алға жылжыды; осы қарқынмен кезегіңіз шамамен мына "
                  "уақытта келуі мүмкін: 2026 ж. қараша. Бұл — болжам"}[lang] in card.text

    clock.set(almaty(2027, 1, 10, 10, 0))  # the two moves are more than 90 days old now
    [card] = await status(tg, lang)
    assert ngettext(lang, "Forecast: not possible yet, the queue ahead of you has not moved forward in "
                               "the last {count} day.",
                         "Forecast: not possible yet, the queue ahead of you has not moved forward in "
                         "the last {count} days.", 90, count="90") in card.text


async def test_first_in_the_queue(tg: Harness, kz: Kezek, world: World) -> None:
    row = world.row()
    await world.apps(row)
    await link(kz, row)
    [card] = await status(tg, "ru")
    assert gettext("ru", "You are first in the queue: the next suitable seat will be offered to you.") \
        in card.text


# --- the chart ------------------------------------------------------------------------------------------

@LANGS
def test_chart_is_a_png_with_localized_months(lang: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers.views.chart

    seen: list[str] = []
    real = handlers.views.chart.format_date

    def spy(lang_: str, d: Any, format: str = "long") -> str:
        text = real(lang_, d, format)
        seen.append(text)
        return text

    monkeypatch.setattr(handlers.views.chart, "format_date", spy)
    start = almaty(2026, 1, 1, 10, 0)
    points = [(start + dt.timedelta(days=9 * i), 60 - i) for i in range(30)]
    png = render_history_png(points, lang, "A00001")
    assert png.startswith(PNG_SIGNATURE)
    assert seen and all(not t.isascii() for t in seen)  # Cyrillic month names
    may = real(lang, dt.date(2026, 5, 1), "LLL y")
    assert may in seen and "May" not in may
    # A few hours of history and a single point still make a chart.
    assert render_history_png(points[:1], lang, "A00001").startswith(PNG_SIGNATURE)
    assert render_history_png([(start, 3), (start + dt.timedelta(hours=2), 2)], lang, "A").startswith(PNG_SIGNATURE)
