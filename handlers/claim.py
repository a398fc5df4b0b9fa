"""Claiming a seat: the seats open to an application → a seat's preview (kindergarten, group,
deadlines) → confirm → referral. Every press is authorised again on the server (the facade checks
that this chat has linked the application); a forged, stale or repeated press gets a clear answer
and changes nothing."""

from __future__ import annotations

import datetime as dt

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import ClaimCallback, SeatsCallback
from handlers.menu import chat_of, edit_or_send
from locales import N_, gettext, ngettext
from locales.errors import error_text
from locales.formats import ZoneOnce, format_datetime, format_deadline, format_number, zone_text
from locales.names import language_name
from services import offers
from services.claiming import ClaimChoices, ClaimPreview, IssuedReferral, SeatChoice
from services.errors import KezekError
from services.kezek import Kezek

VIA_TEXT = {
    offers.VIA_OFFER: N_("offered to you in queue order"),
    offers.VIA_OPEN: N_("open to every child of the birth year"),
    offers.VIA_STATE_ORDER: N_("state order in a private kindergarten"),
}

_BUTTON_MAX = 60  # Telegram shows about this much of a button's label


def _short(text: str, limit: int = _BUTTON_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def choice_label(lang: str, choice: SeatChoice) -> str:
    label = choice.kindergarten.name(lang)
    if choice.group_name:
        label += f" · {choice.group_name}"
    if choice.count > 1:
        label += " · " + ngettext(lang, "{count} seat", "{count} seats", choice.count,
                                       count=format_number(lang, choice.count))
    return _short(label)


def window_note(lang: str, next_at: dt.datetime, hours: tuple[str, str], zone: str | None = "local") -> str:
    """The claim window's hours and its next opening; ``zone``: said after the hours (unless the
    message said it already)."""
    closes = f"{hours[1]} {zone_text(lang, zone)}" if zone else hours[1]
    return gettext(lang, "Seats are claimed on working days from {opens} to {closes}. The next window "
                         "opens {at}.", opens=hours[0], closes=closes, at=format_datetime(lang, next_at))


def choices_text(lang: str, options: ClaimChoices, *, state_order_only: bool = False) -> str:
    head = gettext(lang, "Application {number} (child's IIN {iin}).", number=options.number,
                   iin=options.child_iin_masked)
    if not options.waiting:
        return head + "\n" + gettext(lang, "The application is not waiting in the queue: there is "
                                           "nothing to claim.")
    if not options.choices:
        if state_order_only:
            return head + "\n" + gettext(lang, "No state-order seats in private kindergartens are "
                                               "open to your child right now.")
        return head + "\n" + gettext(lang, "No seats are open to this application right now.")
    lines = [head, gettext(lang, "Seats you can claim:")]
    zone = ZoneOnce()
    for choice in options.choices:
        line = "• " + choice_label(lang, choice) + " — " + gettext(lang, VIA_TEXT[choice.via])
        if choice.expires_at is not None:
            line += " " + gettext(lang, "(until {until})",
                                  until=format_deadline(lang, choice.expires_at, zone=zone.take()))
        lines.append(line)
    if not options.window_open and options.next_window_at is not None:
        lines.append(window_note(lang, options.next_window_at, options.window_hours, zone.take()))
    lines.append(gettext(lang, "Press a seat to see its details before you confirm."))
    return "\n".join(lines)


def choices_keyboard(lang: str, options: ClaimChoices) -> InlineKeyboardMarkup | None:
    if not options.choices:
        return None
    builder = InlineKeyboardBuilder()
    for choice in options.choices:
        builder.button(text=choice_label(lang, choice),
                       callback_data=ClaimCallback(app=options.application_id, seat=choice.seat_id, step="p"))
    builder.adjust(1)
    return builder.as_markup()


def preview_text(lang: str, p: ClaimPreview) -> str:
    lines = [
        gettext(lang, "Application {number} (child's IIN {iin}).", number=p.number, iin=p.child_iin_masked),
        gettext(lang, "Kindergarten: {name}", name=p.kindergarten.name(lang)),
    ]
    if p.kindergarten.address:
        lines.append(gettext(lang, "Address: {address}", address=p.kindergarten.address))
    if p.group_name:
        lines.append(gettext(lang, "Group: {group}", group=p.group_name))
    lines.append(gettext(lang, "Language of the group: {language}", language=language_name(lang, p.language)))
    lines.append(gettext(lang, "How: {how}", how=gettext(lang, VIA_TEXT[p.via])))
    zone = ZoneOnce()
    if p.offer_expires_at is not None:
        lines.append(gettext(lang, "The offer is valid until {until}.",
                             until=format_deadline(lang, p.offer_expires_at, zone=zone.take())))
    lines.append(gettext(lang, "After you confirm, take the referral to the kindergarten by {due}, "
                               "or it is annulled.", due=format_deadline(lang, p.showup_due_at, zone=zone.take())))
    if p.docs_due_at is not None:
        lines.append(gettext(lang, "Documents confirming the privilege are due by {due}, or the "
                                   "referral is annulled and the child returns to the general queue.",
                             due=format_deadline(lang, p.docs_due_at, zone=zone.take())))
    if p.twins:
        lines.append(gettext(lang, "Twins are placed together: the referral is issued for "
                                   "applications {numbers} too.", numbers=", ".join(p.twins)))
    lines.append(gettext(lang, "Confirm the claim?"))
    return "\n".join(lines)


def preview_keyboard(lang: str, p: ClaimPreview) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, "Confirm"),
                   callback_data=ClaimCallback(app=p.application_id, seat=p.seat_id, step="c"))
    builder.button(text=gettext(lang, "Back to the seats"), callback_data=SeatsCallback(app=p.application_id))
    builder.adjust(1)
    return builder.as_markup()


def issued_text(lang: str, refs: list[IssuedReferral]) -> str:
    lines = []
    zone = ZoneOnce()
    for ref in refs:
        lines.append(gettext(lang, "Referral issued for application {number}: {kindergarten}.",
                             number=ref.number, kindergarten=ref.kindergarten.name(lang)))
        if ref.group_name:
            lines.append(gettext(lang, "Group: {group}", group=ref.group_name))
        lines.append(gettext(lang, "Take it to the kindergarten by {due}.",
                             due=format_deadline(lang, ref.showup_due_at, zone=zone.take())))
        if ref.docs_due_at is not None:
            lines.append(gettext(lang, "Privilege documents are due by {due}.",
                                 due=format_deadline(lang, ref.docs_due_at, zone=zone.take())))
    return "\n".join(lines)


async def _show(bot: Bot, callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None,
                *, edit: bool) -> None:
    """Edit the message the button belongs to, or send a new one (an alert's buttons stay)."""
    if edit:
        await edit_or_send(callback, bot, text, markup)
    else:
        await bot.send_message(chat_of(callback), text, reply_markup=markup)


async def show_seats(callback: CallbackQuery, callback_data: SeatsCallback, kz: Kezek, lang: str,
                     bot: Bot) -> None:
    try:
        options = await kz.claim_choices(chat_of(callback), callback_data.app)
    except KezekError as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await callback.answer()
    # From the seat preview ("Back") the list replaces it; from an alert or a status card it
    # comes as a new message, so the alert stays readable.
    from_preview = isinstance(callback.message, Message) and callback.message.text is not None and \
        callback.message.reply_markup is not None and any(
            (b.callback_data or "").startswith(ClaimCallback.__prefix__ + ":")
            for row in callback.message.reply_markup.inline_keyboard for b in row)
    await _show(bot, callback, choices_text(lang, options), choices_keyboard(lang, options), edit=from_preview)


async def preview(callback: CallbackQuery, callback_data: ClaimCallback, kz: Kezek, lang: str,
                  bot: Bot) -> None:
    try:
        p = await kz.claim_preview(chat_of(callback), callback_data.app, callback_data.seat)
    except KezekError as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await callback.answer()
    await _show(bot, callback, preview_text(lang, p), preview_keyboard(lang, p), edit=True)


async def confirm(callback: CallbackQuery, callback_data: ClaimCallback, kz: Kezek, lang: str,
                  bot: Bot) -> None:
    try:
        refs = await kz.claim_seat(chat_of(callback), callback.from_user.id, callback_data.app,
                                   callback_data.seat)
    except KezekError as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await callback.answer(gettext(lang, "Referral issued."))
    await _show(bot, callback, issued_text(lang, refs), None, edit=True)


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="claim")
    router.callback_query.register(show_seats, SeatsCallback.filter())
    router.callback_query.register(preview, ClaimCallback.filter(F.step == "p"))
    router.callback_query.register(confirm, ClaimCallback.filter(F.step == "c"))
    return router
