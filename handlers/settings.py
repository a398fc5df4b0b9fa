"""/settings: the chat's language, which optional notices it gets and its own e-mail for copies.

The settings screen is one message with inline buttons; a toggle or a removal edits it in place.
Setting the e-mail is a short dialogue (aiogram FSM): type the address → a code is sent to it →
type the code. The address and the code are never logged; the screen shows the address masked."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import NoticeCallback, SettingsCallback
from handlers.filters import Magic
from handlers.link import code_prompt
from handlers.menu import MENU, MenuButton, chat_of, edit_or_send, main_menu, stale_button_text
from handlers.start import LANGUAGE_LABELS, language_picker, picker_prompt
from locales import N_, gettext
from locales.errors import error_text
from services.errors import InvalidEmail, KezekError
from services.kezek import Kezek
from services.linking import CodeRateLimited
from services.settings import ChatSettings, EmailCodeWrong, UnknownNoticeSetting
from services.validation import mask_email

# notice key -> its name (English msgid)
NOTICE_NAMES: dict[str, str] = {
    "moves": N_("Queue number changes"),
    "reminders": N_("Reminders before deadlines"),
    "open_seats": N_("Seats opened to everyone in the birth year"),
}
# The toggle buttons (each a literal, so pybabel extracts it; a msgid chosen through a variable
# never reached the catalogs, and the buttons showed English).
TURN_ON = N_("Turn on: {notice}")
TURN_OFF = N_("Turn off: {notice}")

MAX_ADDRESS_LENGTH = 400
CODE_PATTERN = r"^\s*[\d\s]{1,20}\s*$"


class EmailFlow(StatesGroup):
    address = State()
    code = State()


# --- the screen ----------------------------------------------------------------------------------------

def state_text(lang: str, on: bool) -> str:
    return gettext(lang, "on") if on else gettext(lang, "off")


def settings_text(lang: str, settings: ChatSettings) -> str:
    language = LANGUAGE_LABELS.get(settings.language or lang, LANGUAGE_LABELS.get(lang, lang))
    lines = [gettext(lang, "Settings"), "",
             gettext(lang, "Language: {language}", language=language), "",
             gettext(lang, "Optional notices:")]
    for key, name in NOTICE_NAMES.items():
        lines.append(f"• {gettext(lang, name)}: {state_text(lang, settings.notice(key))}")
    lines.append(gettext(lang, "Notices about your turn, referrals, annulments, the stop-list and removal "
                               "from the queue always come."))
    lines.append("")
    if settings.email:
        lines.append(gettext(lang, "E-mail for copies of the notices: {email}", email=mask_email(settings.email)))
    else:
        lines.append(gettext(lang, "E-mail for copies of the notices: not set"))
    return "\n".join(lines)


def settings_keyboard(lang: str, settings: ChatSettings) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, "Change language"), callback_data=SettingsCallback(action="lang"))
    for key, name in NOTICE_NAMES.items():
        on = settings.notice(key)
        label = TURN_OFF if on else TURN_ON
        builder.button(text=gettext(lang, label, notice=gettext(lang, name)),
                       callback_data=NoticeCallback(key=key, on=not on))
    if settings.email:
        builder.button(text=gettext(lang, "Change the e-mail"), callback_data=SettingsCallback(action="email"))
        builder.button(text=gettext(lang, "Remove the e-mail"), callback_data=SettingsCallback(action="rmemail"))
    else:
        builder.button(text=gettext(lang, "Set an e-mail"), callback_data=SettingsCallback(action="email"))
    builder.adjust(1)
    return builder.as_markup()


def cancel_keyboard(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, "Cancel"), callback_data=SettingsCallback(action="cancel"))
    return builder.as_markup()


def address_prompt(lang: str) -> str:
    return gettext(lang, "Type the e-mail address for copies of the notices; we will send a code to it. "
                         "To stop, send /cancel.")


def code_hint(lang: str) -> str:
    return gettext(lang, "Type the code from the e-mail. To stop, send /cancel.")


async def _show_in_place(callback: CallbackQuery, bot: Bot, lang: str, settings: ChatSettings) -> None:
    await edit_or_send(callback, bot, settings_text(lang, settings), settings_keyboard(lang, settings))


# --- handlers ------------------------------------------------------------------------------------------

async def show_settings(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    await state.clear()  # the menu button or /settings also leaves a half-done e-mail dialogue
    settings = await kz.chat_settings(message.chat.id)
    await message.answer(settings_text(lang, settings), reply_markup=settings_keyboard(lang, settings))


async def toggle_notice(callback: CallbackQuery, callback_data: NoticeCallback, kz: Kezek, lang: str,
                        bot: Bot) -> None:
    try:
        settings = await kz.set_notice(chat_of(callback), callback_data.key, callback_data.on)
    except UnknownNoticeSetting:
        await callback.answer(stale_button_text(lang), show_alert=True)
        return
    await callback.answer()
    await _show_in_place(callback, bot, lang, settings)


async def settings_action(callback: CallbackQuery, callback_data: SettingsCallback, state: FSMContext,
                          kz: Kezek, lang: str, bot: Bot) -> None:
    chat_id = chat_of(callback)
    action = callback_data.action
    if action == "lang":
        await callback.answer()
        await bot.send_message(chat_id, picker_prompt(), reply_markup=language_picker())
    elif action == "email":
        await callback.answer()
        await state.set_state(EmailFlow.address)
        await bot.send_message(chat_id, address_prompt(lang), reply_markup=cancel_keyboard(lang))
    elif action == "rmemail":
        removed = await kz.remove_email(chat_id)
        await callback.answer(gettext(lang, "The e-mail has been removed: copies of the notices will no "
                                            "longer be sent to it.") if removed
                              else gettext(lang, "No e-mail is set."))
        await _show_in_place(callback, bot, lang, await kz.chat_settings(chat_id))
    elif action == "cancel":
        if await state.get_state() in (EmailFlow.address.state, EmailFlow.code.state):
            await state.clear()
            await callback.answer()
            await bot.send_message(chat_id, cancelled_text(lang), reply_markup=main_menu(lang))
        else:
            await callback.answer(stale_button_text(lang), show_alert=True)
    else:
        await callback.answer(stale_button_text(lang), show_alert=True)


def cancelled_text(lang: str) -> str:
    return gettext(lang, "Changing the e-mail cancelled.")


async def got_address(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    try:
        email = await kz.request_email(message.chat.id, message.text or "")
    except InvalidEmail as exc:
        await message.answer(error_text(lang, exc) + "\n" + address_prompt(lang),
                             reply_markup=cancel_keyboard(lang))
        return
    except CodeRateLimited as exc:
        await state.clear()
        await message.answer(error_text(lang, exc), reply_markup=main_menu(lang))
        return
    await state.set_state(EmailFlow.code)
    await message.answer(code_prompt(lang, mask_email(email)), reply_markup=cancel_keyboard(lang))


async def got_code(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    try:
        email = await kz.confirm_email(message.chat.id, message.text or "")
    except EmailCodeWrong as exc:
        await message.answer(error_text(lang, exc), reply_markup=cancel_keyboard(lang))
        return
    except KezekError as exc:  # expired, too many tries, nothing pending: the dialogue is over
        await state.clear()
        await message.answer(error_text(lang, exc), reply_markup=main_menu(lang))
        return
    await state.clear()
    await message.answer(gettext(lang, "Done! Copies of the notices will also go to {email}.",
                                 email=mask_email(email)), reply_markup=main_menu(lang))


async def cancel(message: Message, state: FSMContext, lang: str) -> None:
    await state.clear()
    await message.answer(cancelled_text(lang), reply_markup=main_menu(lang))


async def leave_for_menu(message: Message, state: FSMContext) -> None:
    """Another menu button mid-dialogue: the dialogue ends and the button does what it says."""
    await state.clear()
    raise SkipHandler()


async def unexpected(message: Message, state: FSMContext, lang: str) -> None:
    """Anything else mid-dialogue (a photo, a sticker, a long text, a command): say what is
    expected; the dialogue stays where it was."""
    intro = gettext(lang, "I cannot use this message here.")
    if await state.get_state() == EmailFlow.address.state:
        await message.answer(intro + "\n" + address_prompt(lang), reply_markup=cancel_keyboard(lang))
    else:
        await message.answer(intro + "\n" + code_hint(lang), reply_markup=cancel_keyboard(lang))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="settings")
    plain_text = Magic(F.text & ~F.text.startswith("/"))
    router.message.register(show_settings, Command("settings"))
    router.message.register(show_settings, MenuButton("settings"))
    router.callback_query.register(toggle_notice, NoticeCallback.filter())
    router.callback_query.register(settings_action, SettingsCallback.filter())
    other_menu = MenuButton(*(key for key in MENU if key != "settings"))

    async def not_menu(message: Message) -> bool:
        # (after leave_for_menu skips, the other handlers here must not take the press either)
        return not other_menu.match(message)

    # The e-mail dialogue's steps, after the handlers above: a message outside the dialogue
    # passes them with one state check.
    flow = Router(name="settings-email-flow")
    flow.message.filter(StateFilter(EmailFlow))
    flow.message.register(cancel, Command("cancel"))
    flow.message.register(leave_for_menu, other_menu)
    flow.message.register(got_address, StateFilter(EmailFlow.address), plain_text,
                          Magic(F.text.len() <= MAX_ADDRESS_LENGTH), not_menu)
    flow.message.register(got_code, StateFilter(EmailFlow.code), plain_text, Magic(F.text.regexp(CODE_PATTERN)))
    flow.message.register(unexpected, not_menu)
    router.include_router(flow)
    return router
