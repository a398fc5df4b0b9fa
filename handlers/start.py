"""/start: the language picker (Русский / Қазақша), then a greeting and the main menu."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import LANGUAGES, gettext
from handlers.filters import Magic
from handlers.menu import chat_of, main_menu
from services.kezek import Kezek

# Each language is offered under its own name, the same whatever the chat's language is.
LANGUAGE_LABELS: dict[str, str] = {"ru": "Русский", "kk": "Қазақша"}


class LangCallback(CallbackData, prefix="lang"):
    code: str


def language_picker() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in LANGUAGES:
        builder.button(text=LANGUAGE_LABELS[code], callback_data=LangCallback(code=code))
    builder.adjust(2)
    return builder.as_markup()


def picker_prompt() -> str:
    # The chat may not read the language Telegram reports (Kazakh speakers' clients often say
    # 'ru'): ask in both.
    return "\n".join(gettext(code, "Please choose a language:") for code in LANGUAGES)


def stale_button_text(lang: str) -> str:
    return gettext(lang, "This button is no longer valid. Send /start to begin again.")


async def start(message: Message) -> None:
    await message.answer(picker_prompt(), reply_markup=language_picker())


async def choose_language(callback: CallbackQuery, callback_data: LangCallback, kz: Kezek,
                          lang: str, bot: Bot) -> None:
    code = callback_data.code
    if code not in LANGUAGES:
        await callback.answer(stale_button_text(lang), show_alert=True)
        return
    chat_id = chat_of(callback)
    await kz.set_chat_language(chat_id, code)
    await callback.answer(gettext(code, "Language: {language}", language=LANGUAGE_LABELS[code]))
    await bot.send_message(
        chat_id,
        gettext(code, "Welcome to Kezek! Here you can follow your child's place in the kindergarten "
                      "queue and get notices about seats. Use the menu below."),
        reply_markup=main_menu(code),
    )


async def language_label_as_text(message: Message) -> None:
    """A language name typed as text: show the picker again."""
    await message.answer(picker_prompt(), reply_markup=language_picker())


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.callback_query.register(choose_language, LangCallback.filter())
    router.message.register(language_label_as_text, Magic(F.text.in_(set(LANGUAGE_LABELS.values()))))
    return router
