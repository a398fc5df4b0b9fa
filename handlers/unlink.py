"""/unlink: pick a linked application → confirm → it is unlinked from this chat only.

Every button names an application by its id and is authorised by the service (``NotLinked`` for
an application this chat has not linked: forged, stale, already unlinked or a double press); such a
press gets an alert and changes nothing."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import UnlinkCallback
from handlers.menu import MenuButton, chat_of, edit_or_send, no_links_text, stale_button_text
from locales import gettext
from locales.errors import error_text
from services.errors import NotLinked
from services.kezek import Kezek
from services.linking import LinkTarget


def application_label(target: LinkTarget) -> str:
    return f"{target.number} · {target.child_iin_masked}"


def choose_text(lang: str) -> str:
    return gettext(lang, "Which application should be unlinked from this chat?")


def confirm_text(lang: str, target: LinkTarget) -> str:
    return gettext(lang, "Unlink application {number} (child's IIN {iin}) from this chat? You will stop "
                         "getting its notices here.", number=target.number, iin=target.child_iin_masked)


def done_text(lang: str, target: LinkTarget) -> str:
    return gettext(lang, "Application {number} (child's IIN {iin}) is unlinked from this chat. To link it "
                         "again, send /link.", number=target.number, iin=target.child_iin_masked)


def kept_text(lang: str, target: LinkTarget) -> str:
    return gettext(lang, "Nothing changed: application {number} stays linked to this chat.",
                   number=target.number)


def choose_keyboard(targets: list[LinkTarget]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for target in targets:
        builder.button(text=application_label(target),
                       callback_data=UnlinkCallback(action="ask", app_id=target.application_id))
    builder.adjust(1)
    return builder.as_markup()


def confirm_keyboard(lang: str, target: LinkTarget) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, "Yes, unlink"),
                   callback_data=UnlinkCallback(action="yes", app_id=target.application_id))
    builder.button(text=gettext(lang, "No"),
                   callback_data=UnlinkCallback(action="no", app_id=target.application_id))
    builder.adjust(2)
    return builder.as_markup()


async def start_unlink(message: Message, kz: Kezek, lang: str) -> None:
    targets = await kz.linked_applications(message.chat.id)
    if not targets:
        await message.answer(no_links_text(lang))
        return
    await message.answer(choose_text(lang), reply_markup=choose_keyboard(targets))


async def unlink_press(callback: CallbackQuery, callback_data: UnlinkCallback, kz: Kezek, lang: str,
                       bot: Bot) -> None:
    chat_id = chat_of(callback)
    action = callback_data.action
    if action not in ("ask", "yes", "no"):
        await callback.answer(stale_button_text(lang), show_alert=True)
        return
    try:
        if action == "yes":
            target = await kz.unlink(chat_id, callback_data.app_id)
        else:
            target = await kz.linked_target(chat_id, callback_data.app_id)
    except NotLinked as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await callback.answer()
    if action == "ask":
        await edit_or_send(callback, bot, confirm_text(lang, target), confirm_keyboard(lang, target))
    elif action == "yes":
        await edit_or_send(callback, bot, done_text(lang, target))
    else:
        await edit_or_send(callback, bot, kept_text(lang, target))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="unlink")
    router.message.register(start_unlink, Command("unlink"))
    router.message.register(start_unlink, MenuButton("unlink"))
    router.callback_query.register(unlink_press, UnlinkCallback.filter())
    return router
