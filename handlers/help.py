"""/help, and the command menu: one list (``COMMANDS``) for both, which bot.telegram.runner
sets as Telegram's menu; a kindergarten's staff member gets ``STAFF_COMMANDS`` in their chat."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import BotCommand, Message

from handlers.menu import MenuButton, main_menu
from locales import N_, gettext

# The command menu and /help: command, English msgid of its description (N_: extracted).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("choose the language and open the menu")),
    ("link", N_("link an application to this chat")),
    ("status", N_("your child's place in the queue")),
    ("seats", N_("seats in state-order private kindergartens")),
    ("settings", N_("language, e-mail and notices")),
    ("unlink", N_("unlink an application from this chat")),
    ("help", N_("this help")),
)
# A kindergarten's staff member's chat (handlers/staff.py sets it when the invitation is opened).
STAFF_COMMANDS: tuple[tuple[str, str], ...] = (
    ("desk", N_("referrals waiting for a child (kindergarten staff)")), *COMMANDS)


def bot_commands(lang: str, commands: tuple[tuple[str, str], ...] = COMMANDS) -> list[BotCommand]:
    """The menu in ``lang`` (Telegram allows 256 characters a description)."""
    return [BotCommand(command=name, description=gettext(lang, msgid)[:256]) for name, msgid in commands]


def help_text(lang: str) -> str:
    lines = [gettext(lang, "Kezek helps you follow the kindergarten queue. Commands:")]
    lines += [f"/{name} — {gettext(lang, msgid)}" for name, msgid in COMMANDS]
    return "\n".join(lines)


async def show_help(message: Message, lang: str) -> None:
    await message.answer(help_text(lang), reply_markup=main_menu(lang))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="help")
    router.message.register(show_help, Command("help"))
    router.message.register(show_help, MenuButton("help"))
    return router
