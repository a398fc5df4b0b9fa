"""/link: application number → child's IIN → proof (the sender's own contact, or a code sent to
the application's e-mail). Every failure gets the same answer; a locked chat is told until when;
an application the chat has linked before is answered "already linked" (the dialogue ends).

The dialogue lives in aiogram's FSM (the Dispatcher's default MemoryStorage). The number and the
IIN are kept in the FSM data only until the dialogue ends; nothing typed is logged."""

from __future__ import annotations

import datetime as dt

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import LinkCallback
from handlers.filters import Magic
from handlers.menu import MenuButton, chat_of, main_menu
from locales import gettext
from locales.errors import error_text
from services.errors import LinkFailed, LinkLocked
from services.kezek import Kezek
from services.linking import CodeRateLimited, LinkTarget


class LinkFlow(StatesGroup):
    number = State()
    iin = State()
    proof = State()
    code = State()


def failed_text(lang: str) -> str:
    return error_text(lang, LinkFailed())


def locked_text(lang: str, until: dt.datetime) -> str:
    return error_text(lang, LinkLocked(until=until))


def linked_text(lang: str, target: LinkTarget) -> str:
    """The answer to a link: done, or (``target.already``) the chat had linked it before."""
    if target.already:
        return gettext(lang, "Application {number} (child's IIN {iin}) is already linked to this chat.",
                       number=target.number, iin=target.child_iin_masked)
    return gettext(lang, "Done! Application {number} (child's IIN {iin}) is now linked to this chat.",
                   number=target.number, iin=target.child_iin_masked)


def number_prompt(lang: str) -> str:
    return gettext(lang, "Enter the application number as it is written in the application. "
                         "To stop, send /cancel.")


def iin_prompt(lang: str) -> str:
    return gettext(lang, "Enter the child's IIN (12 digits).")


def proof_prompt(lang: str) -> str:
    return gettext(lang, "Confirm that the application is yours: share your phone number with the "
                         "button below (it must be the phone given in the application).")


def code_prompt(lang: str, email: str) -> str:
    return gettext(lang, "We have sent a 6-digit code to {email}. It is valid for 15 minutes. "
                         "Type it here.", email=email)


def contact_keyboard(lang: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=gettext(lang, "Share my phone number"), request_contact=True)]],
        resize_keyboard=True, one_time_keyboard=True)


def email_button(lang: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=gettext(lang, "Send a code to my e-mail"), callback_data=LinkCallback(action="email"))
    return builder.as_markup()


async def remember_language(kz: Kezek, chat_id: int, lang: str) -> None:
    """A chat that never picked a language keeps the one the bot speaks with it now, so that its
    notices (sent later, without an update to read it from) come in that language too."""
    if await kz.chat_language(chat_id) is None:
        await kz.set_chat_language(chat_id, lang)


async def _refuse(message: Message, state: FSMContext, lang: str, exc: LinkFailed | LinkLocked,
                  *, keep_state: bool = False) -> None:
    if isinstance(exc, LinkLocked):
        await state.clear()
        await message.answer(locked_text(lang, exc.params["until"]), reply_markup=main_menu(lang))
        return
    if not keep_state:
        await state.clear()
    await message.answer(failed_text(lang), reply_markup=main_menu(lang))


# --- the steps ---------------------------------------------------------------------------------------

async def start_link(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    await state.clear()
    until = await kz.link_locked_until(message.chat.id)
    if until is not None:
        await message.answer(locked_text(lang, until), reply_markup=main_menu(lang))
        return
    await state.set_state(LinkFlow.number)
    await message.answer(number_prompt(lang), reply_markup=ReplyKeyboardRemove())


async def got_number(message: Message, state: FSMContext, lang: str) -> None:
    await state.update_data(number=(message.text or "").strip()[:40])
    await state.set_state(LinkFlow.iin)
    await message.answer(iin_prompt(lang))


async def got_iin(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    data = await state.get_data()
    iin = "".join((message.text or "").split())[:20]
    try:
        target = await kz.check_link_application(message.chat.id, data.get("number", ""), iin)
    except (LinkFailed, LinkLocked) as exc:
        await _refuse(message, state, lang, exc)
        return
    if target.already:  # the dialogue ends: nothing to prove
        await state.clear()
        await message.answer(linked_text(lang, target), reply_markup=main_menu(lang))
        return
    await state.update_data(iin=iin)
    await state.set_state(LinkFlow.proof)
    await message.answer(proof_prompt(lang), reply_markup=contact_keyboard(lang))
    await message.answer(gettext(lang, "Or get a one-time code at the application's e-mail {email}:",
                                 email=target.email_masked),
                         reply_markup=email_button(lang))


async def got_contact(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    data = await state.get_data()
    contact = message.contact
    assert contact is not None  # the filter
    try:
        target = await kz.link_by_contact(
            message.chat.id, data.get("number", ""), data.get("iin", ""), contact.phone_number,
            contact.user_id, message.from_user.id if message.from_user is not None else None)
    except (LinkFailed, LinkLocked) as exc:
        await _refuse(message, state, lang, exc)
        return
    await state.clear()
    await remember_language(kz, message.chat.id, lang)
    await message.answer(linked_text(lang, target), reply_markup=main_menu(lang))


async def wants_email(callback: CallbackQuery, state: FSMContext, kz: Kezek, lang: str, bot: Bot) -> None:
    data = await state.get_data()
    chat_id = chat_of(callback)
    await callback.answer()
    try:
        target = await kz.send_link_code(chat_id, data.get("number", ""), data.get("iin", ""))
    except LinkLocked as exc:
        await state.clear()
        await bot.send_message(chat_id, locked_text(lang, exc.params["until"]), reply_markup=main_menu(lang))
        return
    except LinkFailed:
        await state.clear()
        await bot.send_message(chat_id, failed_text(lang), reply_markup=main_menu(lang))
        return
    except CodeRateLimited as exc:
        # The dialogue stays: the parent may share the contact instead, or ask again later.
        await bot.send_message(chat_id, error_text(lang, exc))
        return
    if target.already:  # (linked meanwhile, by the contact from another device)
        await state.clear()
        await bot.send_message(chat_id, linked_text(lang, target), reply_markup=main_menu(lang))
        return
    await state.set_state(LinkFlow.code)
    await bot.send_message(chat_id, code_prompt(lang, target.email_masked), reply_markup=ReplyKeyboardRemove())


async def got_code(message: Message, state: FSMContext, kz: Kezek, lang: str) -> None:
    try:
        target = await kz.link_by_code(message.chat.id, (message.text or "")[:20])
    except (LinkFailed, LinkLocked) as exc:
        # The code may be retyped (the service counts the tries).
        await _refuse(message, state, lang, exc, keep_state=True)
        return
    await state.clear()
    await remember_language(kz, message.chat.id, lang)
    await message.answer(linked_text(lang, target), reply_markup=main_menu(lang))


async def cancel(message: Message, state: FSMContext, lang: str) -> None:
    await state.clear()
    await message.answer(gettext(lang, "Linking cancelled."), reply_markup=main_menu(lang))


async def unexpected(message: Message, state: FSMContext, lang: str) -> None:
    """Anything else mid-dialogue (a photo, a sticker, a command): say what is expected; the
    dialogue stays where it was."""
    current = await state.get_state()
    intro = gettext(lang, "I cannot use this message here.")
    if current == LinkFlow.number.state:
        await message.answer(intro + "\n" + number_prompt(lang))
    elif current == LinkFlow.iin.state:
        await message.answer(intro + "\n" + iin_prompt(lang))
    elif current == LinkFlow.proof.state:
        await message.answer(intro + "\n" + gettext(
            lang, "Press the button «{button}» or ask for a code by e-mail. To stop, send /cancel.",
            button=gettext(lang, "Share my phone number")), reply_markup=contact_keyboard(lang))
    else:
        await message.answer(intro + "\n" + gettext(lang, "Type the code from the e-mail. To stop, send /cancel."))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="link")
    plain_text = Magic(F.text & ~F.text.startswith("/"))
    router.message.register(start_link, Command("link"))
    router.message.register(start_link, MenuButton("link"))
    router.callback_query.register(wants_email, StateFilter(LinkFlow.proof), LinkCallback.filter(F.action == "email"))
    # The dialogue's steps, after the handlers above: a message outside the dialogue passes them
    # with one state check instead of one per step (every /status came through here).
    flow = Router(name="link-flow")
    flow.message.filter(StateFilter(LinkFlow))
    flow.message.register(cancel, Command("cancel"))
    flow.message.register(got_number, StateFilter(LinkFlow.number), plain_text)
    flow.message.register(got_iin, StateFilter(LinkFlow.iin), plain_text)
    flow.message.register(got_contact, StateFilter(LinkFlow.proof), Magic(F.contact))
    flow.message.register(got_code, StateFilter(LinkFlow.code), plain_text)
    flow.message.register(unexpected)
    router.include_router(flow)
    return router
