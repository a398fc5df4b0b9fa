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
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import BotCommandScopeChat, CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import StaffCallback
from handlers.help import STAFF_COMMANDS, bot_commands
from handlers.menu import edit_or_send, stale_button_text
from handlers.views.referral_pdf import page_lines, verdict_text
from locales import gettext
from locales.errors import error_text
from locales.formats import ZoneOnce, format_deadline
from locales.names import docs_state_text
from services import referral_check as rc
from services.errors import KezekError
from services.kezek import Kezek
from services.staff import Desk, StaffReferral

ADMIT, NO_SHOW, OPEN = "a", "n", "o"


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
    try:  # the staff's menu in this chat: /desk first
        if message.bot is not None:
            await message.bot.set_my_commands(bot_commands(lang, STAFF_COMMANDS),
                                              scope=BotCommandScopeChat(chat_id=message.chat.id))
    except TelegramAPIError:
        pass  # the menu is a convenience: the welcome below names /desk too
    await message.answer(gettext(
        lang, "You are now staff of {kindergarten} in Kezek. When a parent brings a referral, scan its QR "
              "code with your phone and press «Open in Telegram»: the referral opens here in full, and the "
              "child's arrival is recorded with one tap.", kindergarten=kindergarten.name(lang))
        + "\n\n" + gettext(lang, "Send /desk to see the referrals waiting for a child."))


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


def desk_text(lang: str, desk: Desk) -> str:
    if not desk.entries:
        return gettext(lang, "No referrals are waiting for a child now.")
    lines = [gettext(lang, "Referrals waiting for a child, the soonest deadline first:")]
    zone = ZoneOnce("local")
    for entry in desk.entries:
        line = gettext(lang, "№{id}: {child}, group {group}, until {due}", id=entry.referral_id,
                       child=entry.child_name, group=entry.group_name or "—",
                       due=format_deadline(lang, entry.showup_due_at, zone=zone.take()))
        if entry.docs_state != "not_required":
            line += "; " + gettext(lang, "privilege documents: {state}", state=docs_state_text(lang, entry.docs_state))
        lines.append("• " + line)
    if desk.total > len(desk.entries):
        lines.append(gettext(lang, "The {shown} soonest of {total} are shown.", shown=len(desk.entries),
                             total=desk.total))
    return "\n".join(lines)


def desk_keyboard(desk: Desk) -> InlineKeyboardMarkup | None:
    if not desk.entries:
        return None
    builder = InlineKeyboardBuilder()
    for entry in desk.entries:
        builder.button(text=f"№{entry.referral_id} {entry.child_name}"[:60],
                       callback_data=StaffCallback(ref=entry.referral_id, act=OPEN))
    builder.adjust(1)
    return builder.as_markup()


async def show_desk(message: Message, kz: Kezek, lang: str) -> None:
    """/desk: the referrals waiting at the staff member's kindergarten, with a button for each."""
    if message.from_user is None:
        return
    try:
        found = await kz.staff_desk(message.from_user.id)
    except KezekError as exc:
        await message.answer(error_text(lang, exc))
        return
    await message.answer(desk_text(lang, found), reply_markup=desk_keyboard(found))


async def press(callback: CallbackQuery, callback_data: StaffCallback, kz: Kezek, lang: str, bot: Bot) -> None:
    user_id, ref, act = callback.from_user.id, callback_data.ref, callback_data.act
    calls = {OPEN: kz.staff_referral, ADMIT: kz.staff_admit, NO_SHOW: kz.staff_no_show}
    if act not in calls:
        await callback.answer(stale_button_text(lang), show_alert=True)
        return
    try:
        card = await calls[act](ref, user_id)
    except KezekError as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    if act == OPEN:  # from the desk: the card as a message of its own
        await callback.answer()
        await bot.send_message(user_id, staff_card_text(lang, card), reply_markup=staff_card_keyboard(lang, card))
        return
    said = gettext(lang, "The admission is recorded. The parent has been told.") if act == ADMIT else gettext(
        lang, "The parent has been told that you are waiting for the child until {due}.",
        due=format_deadline(lang, card.facts.valid_until, zone="local"))
    await callback.answer(said, show_alert=True)
    await edit_or_send(callback, bot, staff_card_text(lang, card), staff_card_keyboard(lang, card))


def build_router() -> Router:
    router = Router(name="staff")
    router.message.register(show_desk, Command("desk"))
    router.callback_query.register(press, StaffCallback.filter())
    return router
