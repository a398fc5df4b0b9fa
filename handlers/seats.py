"""/seats: state-order seats of private kindergartens open to the chat's children (age 3+ on the
claim day, any queue number), each with a button that leads to the claim's preview."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from handlers.claim import choices_keyboard, choices_text
from handlers.menu import MenuButton, main_menu, no_links_text
from services.kezek import Kezek


async def show_state_order_seats(message: Message, kz: Kezek, lang: str) -> None:
    per_application = await kz.state_order_choices(message.chat.id)
    if not per_application:
        await message.answer(no_links_text(lang), reply_markup=main_menu(lang))
        return
    for options in per_application:
        await message.answer(choices_text(lang, options, state_order_only=True),
                             reply_markup=choices_keyboard(lang, options))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="seats")
    router.message.register(show_state_order_seats, Command("seats"))
    router.message.register(show_state_order_seats, MenuButton("seats"))
    return router
