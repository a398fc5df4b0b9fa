"""/start: the language picker (Қазақша / Русский), then a greeting and the main menu.

``/start <token>`` (the deep link of the registration e-mail, ``services.deep_link``) links the
chat at once through the linking service, then the start flow goes on: a chat that chose its
language is answered in it, with the main menu and the application's status card; a chat that has
not chosen yet is answered in both languages (the one Telegram reports is often not the parent's)
together with the picker. A refused token gets the answer of any failed link."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers import staff
from handlers.callbacks import LangCallback
from handlers.filters import Magic
from handlers.link import failed_text, linked_text, locked_text, remember_language
from handlers.menu import chat_of, main_menu, stale_button_text
from handlers.status import card_keyboard, card_text
from locales import LANGUAGES, gettext
from services.errors import LinkFailed, LinkLocked
from services.kezek import Kezek
from services.linking import LinkTarget

# Each language is offered under its own name, the same whatever the chat's language is.
LANGUAGE_LABELS: dict[str, str] = {"ru": "Русский", "kk": "Қазақша"}
# Kazakh first, as state services show them (egov: Қаз | Рус) and as the e-mails already are; the
# order of display only (the fallback for a client that reports neither stays the locales package's).
PICKER_ORDER: tuple[str, ...] = ("kk", "ru")


def language_picker() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in PICKER_ORDER:
        builder.button(text=LANGUAGE_LABELS[code], callback_data=LangCallback(code=code))
    builder.adjust(2)
    return builder.as_markup()


def picker_prompt() -> str:
    # The chat may not read the language Telegram reports (Kazakh speakers' clients often say
    # 'ru'): ask in both.
    return "\n".join(gettext(code, "Please choose a language:") for code in PICKER_ORDER)


async def start(message: Message) -> None:
    await message.answer(picker_prompt(), reply_markup=language_picker())


def link_outcome_text(lang: str, outcome: LinkTarget | LinkFailed | LinkLocked) -> str:
    if isinstance(outcome, LinkTarget):
        return linked_text(lang, outcome)
    if isinstance(outcome, LinkLocked):
        return locked_text(lang, outcome.params["until"])
    return failed_text(lang)


async def start_with_token(message: Message, command: CommandObject, state: FSMContext, kz: Kezek,
                           lang: str) -> None:
    """``/start <token>``: link at once, then go on as /start does; a staff invitation or a
    referral's code goes to the kindergarten's side (handlers/staff.py)."""
    token = (command.args or "").strip()
    purpose = kz.token_purpose(token)
    if purpose in ("staff", "referral"):
        await state.clear()
        if purpose == "staff":
            await staff.accept_invitation(message, token, kz, lang)
        else:
            await staff.show_referral(message, token, kz, lang)
        return
    chat_id = message.chat.id
    chosen = await kz.chat_language(chat_id)  # before the link, which may remember a language
    await state.clear()  # a /link dialogue left half-way ends here
    outcome: LinkTarget | LinkFailed | LinkLocked
    try:
        outcome = await kz.link_by_token(chat_id, (command.args or "").strip())
    except (LinkFailed, LinkLocked) as exc:
        outcome = exc
    if chosen is None:
        if isinstance(outcome, LinkTarget):
            await remember_language(kz, chat_id, lang)  # its notices until the picker is used
        text = "\n\n".join(link_outcome_text(code, outcome) for code in PICKER_ORDER)
        await message.answer(text + "\n\n" + picker_prompt(), reply_markup=language_picker())
        return
    await message.answer(link_outcome_text(chosen, outcome), reply_markup=main_menu(chosen))
    if isinstance(outcome, LinkTarget):
        for card in await kz.status_cards(chat_id):
            if card.application_id == outcome.application_id:
                await message.answer(card_text(chosen, card), reply_markup=card_keyboard(chosen, card))


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
    router.message.register(start_with_token, CommandStart(deep_link=True))
    router.message.register(start, CommandStart())
    router.callback_query.register(choose_language, LangCallback.filter())
    router.message.register(language_label_as_text, Magic(F.text.in_(set(LANGUAGE_LABELS.values()))))
    return router
