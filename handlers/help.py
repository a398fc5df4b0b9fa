"""/help, and the commands of the main menu that are not built yet ("coming soon")."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from handlers.menu import MenuButton, main_menu
from locales import gettext


def help_text(lang: str) -> str:
    lines = [
        gettext(lang, "Kezek helps you follow the kindergarten queue. Commands:"),
        "/start — " + gettext(lang, "choose the language and open the menu"),
        "/link — " + gettext(lang, "link an application to this chat"),
        "/status — " + gettext(lang, "your child's place in the queue"),
        "/seats — " + gettext(lang, "seats in state-order private kindergartens"),
        "/settings — " + gettext(lang, "language, e-mail and notices"),
        "/unlink — " + gettext(lang, "unlink an application from this chat"),
        "/help — " + gettext(lang, "this help"),
    ]
    return "\n".join(lines)


async def show_help(message: Message, lang: str) -> None:
    await message.answer(help_text(lang), reply_markup=main_menu(lang))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="help")
    router.message.register(show_help, Command("help"))
    router.message.register(show_help, MenuButton("help"))
    return router
