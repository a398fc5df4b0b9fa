"""The main menu: a reply keyboard that mirrors the commands, and a filter for its buttons.

Button labels are localized; a press is recognised in either language (a chat may switch
language while an old keyboard is still shown)."""

from __future__ import annotations

from functools import cache

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)

from locales import LANGUAGES, N_, gettext

# command -> button label (English msgid)
MENU: dict[str, str] = {
    "link": N_("Link an application"),
    "status": N_("My queue status"),
    "seats": N_("Available seats"),
    "settings": N_("Settings"),
    "unlink": N_("Unlink"),
    "help": N_("Help"),
}

_ROWS = (("link", "status"), ("seats", "settings"), ("unlink", "help"))


def main_menu(lang: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=gettext(lang, MENU[key])) for key in row] for row in _ROWS],
        resize_keyboard=True,
        is_persistent=True,
    )


@cache
def labels(key: str) -> frozenset[str]:
    """The label of a menu button in every language (the catalogs do not change while the
    process runs; every message was checked against several buttons' labels, each a gettext)."""
    return frozenset(gettext(lang, MENU[key]) for lang in LANGUAGES)


class MenuButton(Filter):
    """A message filter: the text is the label of one of the given menu buttons.

    An aiogram ``Filter`` (its ``__call__`` is a coroutine): aiogram runs a plain callable filter
    in a worker thread (``asyncio.to_thread``) on every check, which cost more than the whole
    /status lookup; see ``handlers.filters``."""

    def __init__(self, *keys: str) -> None:
        self.keys = keys

    def match(self, message: Message) -> bool | dict[str, str]:
        text = (message.text or "").strip()
        for key in self.keys:
            if text in labels(key):
                return {"menu_key": key}
        return False

    async def __call__(self, message: Message) -> bool | dict[str, str]:
        return self.match(message)


def no_links_text(lang: str) -> str:
    """The answer of every screen about linked applications when the chat has none."""
    return gettext(lang, "No application is linked to this chat yet. To link one, send /link.")


def chat_of(callback: CallbackQuery) -> int:
    """The chat a button was pressed in (the sender's private chat when the message is gone)."""
    return callback.message.chat.id if callback.message is not None else callback.from_user.id


def stale_button_text(lang: str) -> str:
    """The answer to a button that no longer means anything (old, forged or of another version)."""
    return gettext(lang, "This button is no longer valid. Send /start to begin again.")


async def edit_or_send(callback: CallbackQuery, bot: Bot, text: str,
                       markup: InlineKeyboardMarkup | None = None) -> None:
    """Show ``text`` in place of the message the button belongs to, or as a new message when that
    one cannot be edited. A double press that would change nothing is left alone."""
    message = callback.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if "not modified" in str(exc).lower():
                return
    await bot.send_message(chat_of(callback), text, reply_markup=markup)
