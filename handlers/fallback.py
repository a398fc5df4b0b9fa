"""Last router: whatever no other handler took (a sticker, a photo, a location, free text,
an unknown command, a stale or forged button) gets a clear hint and changes nothing."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from handlers.menu import main_menu, stale_button_text
from locales import gettext


async def not_understood(message: Message, lang: str) -> None:
    await message.answer(
        gettext(lang, "I did not understand this message. Please use the menu buttons below "
                      "or send /help."),
        reply_markup=main_menu(lang))


async def nothing_to_cancel(message: Message, lang: str) -> None:
    await message.answer(gettext(lang, "There is nothing to cancel."), reply_markup=main_menu(lang))


async def stale_button(callback: CallbackQuery, lang: str) -> None:
    await callback.answer(stale_button_text(lang), show_alert=True)


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="fallback")
    router.message.register(nothing_to_cancel, Command("cancel"))
    router.message.register(not_understood)
    router.callback_query.register(stale_button)
    return router
