"""/status and the "My queue status" button: one card per linked application (number and its
move since the last look with the causes, privilege, preferred kindergartens, state, forecast),
with a "History" button (the moves as text and a PNG chart) and, when a seat is offered, a
"Choose a seat" button. Every History press is authorised again on the server."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiogram import Bot, Router
from aiogram.filters import Command, StateFilter
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from handlers.callbacks import DocsCallback, HistoryCallback, ReferralPdfCallback, SeatsCallback
from handlers.menu import MenuButton, chat_of, main_menu, no_links_text
from handlers.views.chart import render_history_png
from handlers.views.referral_pdf import referral_attachment
from locales import gettext, ngettext, normalize_language
from locales.errors import error_text
from locales.formats import ZoneOnce, format_date, format_deadline, format_number
from locales.names import STATUSES_UNTIL, cause_text, privilege_text, status_text
from services import status as st
from services.errors import NotLinked, ReferralNotFound
from services.kezek import Kezek

# --- rendering ---------------------------------------------------------------------------------------

def _name(lang: str, ru: str, kk: str) -> str:
    return (kk if normalize_language(lang) == "kk" else ru) or ru or kk


def move_text(lang: str, card: st.StatusCard) -> str | None:
    """The move of the number since this chat's last look, or None on the first look."""
    delta = card.delta
    if delta is None or card.previous_at is None:
        return None
    since = format_date(lang, card.previous_at)
    previous = format_number(lang, card.previous_number or 0)
    if delta < 0:
        return ngettext(lang, "Up by {count} place since {date} (it was {previous}).",
                        "Up by {count} places since {date} (it was {previous}).",
                        -delta, count=format_number(lang, -delta), date=since, previous=previous)
    if delta > 0:
        return ngettext(lang, "Down by {count} place since {date} (it was {previous}).",
                        "Down by {count} places since {date} (it was {previous}).",
                        delta, count=format_number(lang, delta), date=since, previous=previous)
    return gettext(lang, "No change since {date}.", date=since)


def cause_lines(lang: str, causes: dict[str, int]) -> list[str]:
    return [f"• {cause_text(lang, cause, n)}" for cause, n in sorted(causes.items()) if n]


# Month and year in each language's own order and case: kk "2026 ж. желтоқсан" (the format month:
# kk's stand-alone LLLL is the capitalised "Желтоқсан"), ru "декабрь 2026 г." (the stand-alone
# nominative, where the format month would be the genitive "декабря").
MONTH_PATTERNS = {"kk": "y 'ж'. MMMM", "ru": "LLLL y 'г'."}


def month_text(lang: str, day: dt.date) -> str:
    """Month and year only: a forecast has no day-precision."""
    return format_date(lang, day, MONTH_PATTERNS[normalize_language(lang)])


def period_text(lang: str, days: int) -> str:
    """'in the last 21 days', with the plural of its own number (ru 'за последние 21 день')."""
    return ngettext(lang, "in the last {count} day", "in the last {count} days", days,
                    count=format_number(lang, days))


def forecast_text(lang: str, forecast: st.Forecast, stop_listed: bool = False) -> str:
    if forecast.kind == st.FORECAST_FIRST and stop_listed:
        return gettext(lang, "You are first in the queue: once the stop-list ends, the next suitable seat "
                             "will be offered to you.")
    if forecast.kind == st.FORECAST_FIRST:
        return gettext(lang, "You are first in the queue: the next suitable seat will be offered to you.")
    if forecast.kind == st.FORECAST_ESTIMATE and forecast.expected is not None:
        return ngettext(
            lang,
            "Forecast: {period} your number moved up by {count} place; at this pace "
            "your turn may come around {month}. This is an estimate, not a promise.",
            "Forecast: {period} your number moved up by {count} places; at this pace "
            "your turn may come around {month}. This is an estimate, not a promise.",
            forecast.advanced, count=format_number(lang, forecast.advanced),
            period=period_text(lang, forecast.days), month=month_text(lang, forecast.expected))
    if forecast.kind == st.FORECAST_TOO_EARLY:
        return gettext(lang, "Forecast: not possible yet, the application joined the queue too recently.")
    return ngettext(lang, "Forecast: not possible yet, the queue ahead of you has not moved forward in "
                          "the last {count} day.",
                    "Forecast: not possible yet, the queue ahead of you has not moved forward in "
                    "the last {count} days.", forecast.days, count=format_number(lang, forecast.days))


def card_text(lang: str, card: st.StatusCard) -> str:
    lines = [
        gettext(lang, "Application {number}, child's IIN {iin}", number=card.number, iin=card.child_iin_masked),
        gettext(lang, "Queue: {district}, children born in {year}",
                district=_name(lang, card.district_name_ru, card.district_name_kk), year=card.birth_year),
    ]
    if card.queue_number is not None:
        lines.append(gettext(lang, "Queue number: {number}", number=format_number(lang, card.queue_number)))
        move = move_text(lang, card)
        if move is not None:
            lines.append(move)
            lines += cause_lines(lang, card.causes)
    lines.append(gettext(lang, "Privilege: {privilege}", privilege=privilege_text(lang, card.privilege)))
    if card.any_kindergarten or not card.preferred:
        kindergartens = gettext(lang, "any kindergarten")
    else:
        kindergartens = ", ".join(f"{k.name(lang)} ({k.code})" for k in card.preferred)
    lines.append(gettext(lang, "Preferred kindergartens: {kindergartens}", kindergartens=kindergartens))
    zone = ZoneOnce()  # said after the card's first deadline
    state = status_text(lang, card.state, card.until,
                             zone=zone.take() if card.until is not None and card.state in STATUSES_UNTIL else None)
    lines.append(gettext(lang, "State: {state}", state=state))
    if card.referral_kindergarten is not None and card.state in ("referred", "admitted"):
        kg = card.referral_kindergarten
        lines.append(gettext(lang, "Kindergarten: {kindergarten}",
                             kindergarten=f"{kg.name(lang)} ({kg.code})"))
    if card.docs_due_at is not None:
        lines.append(gettext(lang, "Privilege documents are due by {due}.",
                             due=format_deadline(lang, card.docs_due_at, zone=zone.take())))
    if card.forecast is not None:
        lines.append(forecast_text(lang, card.forecast, stop_listed=card.state == "stop_listed"))
    return "\n".join(lines)


def card_keyboard(lang: str, card: st.StatusCard) -> InlineKeyboardMarkup:
    # Built directly, one button a row (aiogram's builder deep-copies its buttons: a tenth of
    # the reply's CPU on every /status).
    rows = []
    if card.offer_open:
        rows.append([InlineKeyboardButton(text=gettext(lang, "Choose a seat"),
                                          callback_data=SeatsCallback(app=card.application_id).pack())])
    if card.referral_id is not None:
        rows.append([InlineKeyboardButton(text=gettext(lang, "Referral (PDF)"),
                                          callback_data=ReferralPdfCallback(app=card.application_id).pack())])
    if card.referral_id is not None and card.docs_due_at is not None:
        rows.append([InlineKeyboardButton(text=gettext(lang, "Send privilege documents"),
                                          callback_data=DocsCallback(action="h", app=card.application_id).pack())])
    rows.append([InlineKeyboardButton(text=gettext(lang, "History"),
                                      callback_data=HistoryCallback(app=card.application_id).pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def history_text(lang: str, view: st.HistoryView) -> str:
    if not view.waiting or view.queue_number is None:
        return gettext(lang, "Application {number} is not waiting in the queue, so its queue number has "
                             "no history to show.", number=view.number)
    lines = [gettext(lang, "Application {number}: queue number {queue_number} now.",
                     number=view.number, queue_number=format_number(lang, view.queue_number))]
    if not view.moves:
        lines.append(gettext(lang, "The queue ahead of you has not moved since {date}.",
                             date=format_date(lang, view.since) if view.since else ""))
        return "\n".join(lines)
    lines.append(gettext(lang, "Latest moves:"))
    for move in view.moves:
        if move.delta < 0:
            change = ngettext(lang, "up by {count} place", "up by {count} places", -move.delta,
                              count=format_number(lang, -move.delta))
        elif move.delta > 0:
            change = ngettext(lang, "down by {count} place", "down by {count} places", move.delta,
                              count=format_number(lang, move.delta))
        else:
            change = gettext(lang, "no change")
        lines.append(f"{format_date(lang, move.day)}: {change}")
        lines += ["  " + line for line in cause_lines(lang, move.causes)]
    return "\n".join(lines)


# --- handlers ----------------------------------------------------------------------------------------

async def show_status(message: Message, kz: Kezek, lang: str) -> None:
    cards = await kz.status_cards(message.chat.id)
    if not cards:
        await message.answer(no_links_text(lang), reply_markup=main_menu(lang))
        return
    for card in cards:
        await message.answer(card_text(lang, card), reply_markup=card_keyboard(lang, card))


async def show_history(callback: CallbackQuery, callback_data: HistoryCallback, kz: Kezek, lang: str,
                       bot: Bot) -> None:
    chat_id = chat_of(callback)
    try:
        view = await kz.status_history(chat_id, callback_data.app)
    except NotLinked as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await callback.answer()
    await bot.send_message(chat_id, history_text(lang, view))
    if not view.waiting or not view.points:
        return
    title = gettext(lang, "Application {number}", number=view.number)
    png = await asyncio.to_thread(render_history_png, view.points, lang, title)
    caption = gettext(lang, "Queue number of application {number} since {date}", number=view.number,
                      date=format_date(lang, view.since) if view.since else "")
    await bot.send_photo(chat_id, BufferedInputFile(png, "history.png"), caption=caption)


async def send_referral_pdf(callback: CallbackQuery, callback_data: ReferralPdfCallback, kz: Kezek, lang: str,
                            bot: Bot) -> None:
    """The referral's PDF again (the one sent with "referral issued" may be lost or deleted), in
    the chat's language; authorised again on the server like every button."""
    chat_id = chat_of(callback)
    try:
        referral_id = await kz.chat_referral(chat_id, callback_data.app)
        document = await kz.referral_document(referral_id)
    except (NotLinked, ReferralNotFound) as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await callback.answer()
    file = await referral_attachment(document, [lang])
    await bot.send_document(chat_id, BufferedInputFile(file.content, file.filename),
                            caption=gettext(lang, "Referral {id}: show it at the kindergarten, where its QR code "
                                                  "is checked.", id=referral_id))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="status")
    router.message.register(show_status, Command("status"))
    router.message.register(show_status, MenuButton("status"))
    router.callback_query.register(show_history, HistoryCallback.filter())
    router.callback_query.register(send_referral_pdf, ReferralPdfCallback.filter())
    return router


def build_first_router() -> Router:
    """/status and its menu button outside a dialogue, for the front of the Dispatcher: the screen
    parents open most is found at the first router instead of after five others' filters. Outside
    a dialogue no router before ``build_router``'s takes these messages, so the answer is the
    same; in a dialogue this router stands aside and the dialogue's steps come first, as before
    (and after "leave the dialogue for the menu", ``build_router``'s handlers take the press)."""
    router = Router(name="status-first")
    router.message.filter(StateFilter(None))
    router.message.register(show_status, Command("status"))
    router.message.register(show_status, MenuButton("status"))
    return router
