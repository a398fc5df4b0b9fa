"""Privilege documents sent in the chat (services/documents.py has the rules and the checks).

A photo or a file from a chat whose referral awaits privilege documents is downloaded from
Telegram (its reported size is checked first, the real size while it arrives), checked, kept and
answered at once: what was received, how many files so far, and the deadline left. A chat with
several applications awaiting documents is asked which one the files are for (buttons with the
application's id only; each press is authorised on the server again); the choice holds for the
next files, and so does the choice made with «Send documents» on the status card. Anything else
(a file before linking, with nothing awaited, after the deadline, of a wrong type, too big, too
small to read) gets a clear answer and changes nothing. Videos, voice and audio messages are
told what is accepted."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from handlers.callbacks import DocsCallback
from handlers.filters import Magic
from handlers.menu import chat_of, main_menu
from locales import gettext, ngettext
from locales.errors import error_text
from locales.formats import format_deadline, format_number
from services import documents as docs
from services.errors import KezekError
from services.kezek import Kezek

log = logging.getLogger("kezek.documents")

CHOSEN = "docs_app"  # FSM data: the application the chat's next files are for
WAITING = "docs_waiting"  # FSM data: files sent before the chat said which application they are for
DOWNLOAD_TIMEOUT = 60


class _Failed(Exception):
    """The file could not be fetched from Telegram (the message has been answered)."""


# --- texts ---------------------------------------------------------------------------------------------

def left_text(lang: str, due: dt.datetime, now: dt.datetime) -> str:
    left = due - now
    if left >= dt.timedelta(days=1):
        return ngettext(lang, "{count} day left", "{count} days left", left.days,
                        count=format_number(lang, left.days))
    hours = max(1, -(-int(left.total_seconds()) // 3600))
    return ngettext(lang, "{count} hour left", "{count} hours left", hours, count=format_number(lang, hours))


def received_text(lang: str, r: docs.Received) -> str:
    if r.duplicate:
        lines = [gettext(lang, "This file has already been received for application {number}; there is no need "
                               "to send it again.", number=r.application_number)]
    elif r.kind == docs.PDF:
        lines = [ngettext(lang, "Received for application {number}: a PDF file of {count} page.",
                          "Received for application {number}: a PDF file of {count} pages.", r.pages,
                          number=r.application_number, count=format_number(lang, r.pages))]
    else:
        lines = [gettext(lang, "Received for application {number}: an image of {width}×{height} pixels.",
                         number=r.application_number, width=r.width or 0, height=r.height or 0)]
    lines.append(ngettext(lang, "{count} file received so far (at most {max}).",
                          "{count} files received so far (at most {max}).", r.count,
                          count=format_number(lang, r.count), max=format_number(lang, docs.MAX_FILES)))
    lines.append(gettext(lang, "The operator will check the documents. Files are accepted until {due} ({left}).",
                         due=format_deadline(lang, r.docs_due_at, zone="local"),
                         left=left_text(lang, r.docs_due_at, r.now)))
    return "\n".join(lines)


def how_to_text(lang: str, target: docs.Target, now: dt.datetime) -> str:
    return "\n".join([
        gettext(lang, "Send the privilege documents of application {number} here, in this chat: photos of the "
                      "pages, or JPEG, PNG or PDF files.", number=target.number),
        gettext(lang, "Each file at most {size} MB, a PDF at most {pages} pages, at most {files} files; a photo "
                      "must show the whole page sharply.", size=format_number(lang, docs.MAX_MEGABYTES),
                pages=format_number(lang, docs.MAX_PAGES), files=format_number(lang, docs.MAX_FILES)),
        ngettext(lang, "{count} file received so far.", "{count} files received so far.", target.received,
                 count=format_number(lang, target.received)),
        gettext(lang, "Files are accepted until {due} ({left}).",
                due=format_deadline(lang, target.docs_due_at, zone="local"),
                left=left_text(lang, target.docs_due_at, now)),
    ])


def pick_keyboard(targets: list[docs.Target]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=t.number, callback_data=DocsCallback(action="p", app=t.application_id).pack())]
        for t in targets])


# --- files -------------------------------------------------------------------------------------------

def _file_of(message: Message) -> dict[str, Any] | None:
    """The file a message carries: the largest size of a photo, or a document."""
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return {"file_id": largest.file_id, "size": largest.file_size}
    if message.document is not None:
        return {"file_id": message.document.file_id, "size": message.document.file_size}
    return None


async def _download(bot: Bot, file_id: str, declared: int | None) -> bytes:
    """The file's bytes: ``DocumentTooLarge`` past the limit (before downloading when Telegram
    says so), ``_Failed`` when Telegram does not give it."""
    if declared is not None and declared > docs.MAX_BYTES:
        raise docs.DocumentTooLarge(max=docs.MAX_MEGABYTES)
    try:
        file = await bot.get_file(file_id)
    except TelegramAPIError as exc:
        # Telegram refuses files over 20 MB to bots: "file is too big".
        if "too big" in str(exc).lower():
            raise docs.DocumentTooLarge(max=docs.MAX_MEGABYTES) from None
        log.warning("getFile failed: %s", type(exc).__name__)
        raise _Failed() from None
    if file.file_size is not None and file.file_size > docs.MAX_BYTES:
        raise docs.DocumentTooLarge(max=docs.MAX_MEGABYTES)
    if not file.file_path:
        raise _Failed()
    session = bot.session
    if session.api.is_local:  # a local Bot API server hands out paths on its own disk
        import io

        buffer = io.BytesIO()
        await bot.download_file(file.file_path, buffer, timeout=DOWNLOAD_TIMEOUT)
        data = buffer.getvalue()
        if len(data) > docs.MAX_BYTES:
            raise docs.DocumentTooLarge(max=docs.MAX_MEGABYTES)
        return data
    url = session.api.file_url(bot.token, file.file_path)
    streamed = bytearray()
    try:
        async for chunk in session.stream_content(url=url, timeout=DOWNLOAD_TIMEOUT, chunk_size=65536,
                                                  raise_for_status=True):
            streamed += chunk
            if len(streamed) > docs.MAX_BYTES:
                raise docs.DocumentTooLarge(max=docs.MAX_MEGABYTES)
    except KezekError:
        raise
    except Exception as exc:  # noqa: BLE001 - a network fault, a 4xx/5xx of the file server
        log.warning("file download failed: %s", type(exc).__name__)
        raise _Failed() from None
    return bytes(streamed)


async def _take(bot: Bot, kz: Kezek, lang: str, chat_id: int, target: docs.Target, file: dict[str, Any]) -> str:
    """Fetch, check and keep one file for the application; the answer for the parent. A
    referral that has all its files already is told so before anything is downloaded."""
    try:
        target.check_room()
        data = await _download(bot, str(file["file_id"]), file.get("size"))
        received = await kz.submit_document(chat_id, target.application_id, data)
    except _Failed:
        return gettext(lang, "The file could not be received from Telegram. Please send it again.")
    except docs.DocumentRefused as exc:
        log.info("document refused: %s", exc.code)
        return error_text(lang, exc)
    except KezekError as exc:
        return error_text(lang, exc)
    return received_text(lang, received)


async def on_file(message: Message, kz: Kezek, lang: str, bot: Bot, state: FSMContext) -> None:
    file = _file_of(message)
    assert file is not None
    chat_id = message.chat.id
    try:
        targets = await kz.document_targets(chat_id)
    except KezekError as exc:
        await message.answer(error_text(lang, exc), reply_markup=main_menu(lang))
        return
    data = await state.get_data()
    target = next((t for t in targets if t.application_id == data.get(CHOSEN)), None)
    if target is None and len(targets) == 1:
        target = targets[0]
    if target is None:
        waiting = list(data.get(WAITING) or [])[-(docs.MAX_FILES - 1):] + [file]
        await state.update_data({WAITING: waiting})
        await message.answer(gettext(lang, "Which application are these documents for?"),
                             reply_markup=pick_keyboard(targets))
        return
    await message.answer(await _take(bot, kz, lang, chat_id, target, file))


async def on_other_media(message: Message, lang: str) -> None:
    await message.answer(gettext(
        lang, "Videos, animations, voice and audio messages are not accepted. Privilege documents "
              "are sent as photos of the pages, or as JPEG, PNG or PDF files."))


async def on_button(callback: CallbackQuery, callback_data: DocsCallback, kz: Kezek, lang: str, bot: Bot,
                    state: FSMContext) -> None:
    chat_id = chat_of(callback)
    if callback_data.action not in ("h", "p"):
        await callback.answer(gettext(lang, "This button is no longer valid. Send /start to begin again."),
                              show_alert=True)
        return
    try:
        [target] = await kz.document_targets(chat_id, callback_data.app)
    except KezekError as exc:
        await callback.answer(error_text(lang, exc), show_alert=True)
        return
    await state.update_data({CHOSEN: target.application_id})
    await callback.answer()
    if callback_data.action == "h":
        await bot.send_message(chat_id, how_to_text(lang, target, kz.clock.now()))
        return
    waiting = list((await state.get_data()).get(WAITING) or [])
    await state.update_data({WAITING: []})
    if not waiting:
        await bot.send_message(chat_id, how_to_text(lang, target, kz.clock.now()))
        return
    for file in waiting:
        if isinstance(file, dict) and isinstance(file.get("file_id"), str):
            await bot.send_message(chat_id, await _take(bot, kz, lang, chat_id, target, file))


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    router = Router(name="documents")
    # An animation (a GIF) carries a document too: it is not a document here.
    router.message.register(on_other_media, Magic(F.video | F.voice | F.audio | F.video_note | F.animation))
    router.message.register(on_file, Magic(F.photo | F.document))
    router.callback_query.register(on_button, DocsCallback.filter())
    return router
