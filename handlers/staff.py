"""The kindergarten's side of a referral in the chat (services/staff.py).

* ``/start <invitation>``: the operator's one-time link binds this Telegram account to a
  kindergarten as its staff.
* ``/start <referral code>`` (the public page's "Open in Telegram", or the code scanned by the
  staff member's own phone): the referral in full, for staff of its kindergarten only, with two
  buttons: the child has come (admitted, in one tap) and the child has not come (the parent is
  told until when the referral holds). Anyone else is told to use the page the QR code opens.

The message is the staff member's language (the chat's, as everywhere)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import StaffCallback
from handlers.menu import edit_or_send
from handlers.views.referral_pdf import page_lines, verdict_text
from locales import gettext
from locales.errors import error_text
from locales.formats import format_deadline
from services import referral_check as rc
from services.errors import KezekError
from services.kezek import Kezek
from services.staff import StaffReferral

ADMIT, NO_SHOW = "a", "n"


def staff_card_text(lang: str, card: StaffReferral) -> str:
    lines = [verdict_text(lang, rc.Verdict(card.state, card.facts)), "",
             gettext(lang, "Child: {name}", name=card.child_name)]
    lines += [f"{label}: {value}" for label, value in page_lines(lang, card.facts)]
    return "\n".join(lines)


def staff_card_keyboard(lang: str, card: StaffReferral) -> InlineKeyboardMarkup | None:
    if card.state != rc.VALID:
        return None
    builder = InlineKeyboardBuilder()
    ref = card.facts.referral_id
    builder.button(text=gettext(lang, "The child has come: admit"), callback_data=StaffCallback(ref=ref, act=ADMIT))
    builder.button(text=gettext(lang, "The child has not come"), callback_data=StaffCallback(ref=ref, act=NO_SHOW))
    builder.adjust(1)
    return builder.as_markup()


async def accept_invitation(message: Message, token: str, kz: Kezek, lang: str) -> None:
    user = message.from_user
    if user is None:
        return
    try:
        kindergarten = await kz.accept_staff_invite(token, user.id)
    except KezekError as exc:
        await message.answer(error_text(lang, exc))
        return
    await message.answer(gettext(
        lang, "You are now staff of {kindergarten} in Kezek. When a parent brings a referral, scan its QR "
              "code with your phone and press «Open in Telegram»: the referral opens here in full, and the "
              "child's arrival is recorded with one tap.", kindergarten=kindergarten.name(lang)))


async def show_referral(message: Message, token: str, kz: Kezek, lang: str) -> None:
    user = message.from_user
    if user is None:
        return
    try:
        card = await kz.staff_referral_by_token(token, user.id)
    except KezekError as exc:
        await message.answer(error_text(lang, exc))
        return
    await message.answer(staff_card_text(lang, card), reply_markup=staff_card_keyboard(lang, card))


async def press(callback: CallbackQuery, callback_data: StaffCallback, kz: Kezek, lang: str, bot: Bot) -> None:
    user_id = callback.from_user.id
    try:
        if callback_data.act == ADMIT:
            card = await kz.staff_admit(callback_data.ref, user_id)
            said = gettext(lang, "The admission is recorded. The parent has been told.")
        elif callback_data.act == NO_SHOW:
            card = await kz.staff_no_show(callback_data.ref, user_id)
            said = gettext(lang, "The parent has been told that you are waiting for the child until {due}.",
                           due=format_deadline(lang, card.facts.valid_until, zone="local"))
        else:
            raise ValueError(callback_data.act)
    except (KezekError, ValueError) as exc:
        text = error_text(lang, exc) if isinstance(exc, KezekError) else gettext(
            lang, "This button is no longer valid. Send /start to begin again.")
        await callback.answer(text, show_alert=True)
        return
    await callback.answer(said, show_alert=True)
    await edit_or_send(callback, bot, staff_card_text(lang, card), staff_card_keyboard(lang, card))


def build_router() -> Router:
    router = Router(name="staff")
    router.callback_query.register(press, StaffCallback.filter())
    return router
