"""The first slice of the Telegram front, driven through the real Dispatcher.

Updates go in with ``dp.feed_update``; the Bot's session records every Bot API call instead of
sending it (the pattern of aiogram's own tests/mocked_bot.py) and answers with canned results."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncGenerator
from itertools import count
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.methods import AnswerCallbackQuery, EditMessageText, GetMe, SendMessage, TelegramMethod
from aiogram.types import (
    CallbackQuery,
    Chat,
    Document,
    InlineKeyboardMarkup,
    Location,
    Message,
    PhotoSize,
    ReplyKeyboardMarkup,
    Sticker,
    Update,
    User,
)
from sqlalchemy import select

from bot.telegram.app import build_dispatcher
from locales import gettext
from locales.errors import error_text
from services import chats
from services.kezek import Kezek
from storage.models import AuditEntry
from storage.models import Chat as ChatRow

BOT_USER = User(id=42, is_bot=True, first_name="Kezek", username="kezek_bot")
CHAT_ID = 1001
SORRY = "Something went wrong. Please try again later."
HINT = "I did not understand this message. Please use the menu buttons below or send /help."
WELCOME = ("Welcome to Kezek! Here you can follow your child's place in the kindergarten queue and "
           "get notices about seats. Use the menu below.")
STALE = "This button is no longer valid. Send /start to begin again."


class RecordingSession(BaseSession):
    """Records Bot API calls and answers them without any network."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self._ids = count(500)

    async def close(self) -> None:
        pass

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        self.requests.append(method)
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, SendMessage):
            return Message(message_id=next(self._ids), date=dt.datetime.now(dt.UTC),
                           chat=Chat(id=int(method.chat_id), type="private"), from_user=BOT_USER,
                           text=method.text)
        return True

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
                             chunk_size: int = 65536, raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:
        yield b""


class Harness:
    def __init__(self, dp: Dispatcher) -> None:
        self.dp = dp
        self.session = RecordingSession()
        self.bot = Bot("42:TEST", session=self.session)
        self._update_ids = count(1)
        self._message_ids = count(1)

    def user(self, language_code: str | None = "ru", user_id: int = CHAT_ID) -> User:
        return User(id=user_id, is_bot=False, first_name="Айгерим", language_code=language_code)

    async def send(self, language_code: str | None = "ru", chat_type: str = "private",
                   **content: Any) -> list[TelegramMethod[Any]]:
        message = Message(message_id=next(self._message_ids), date=dt.datetime.now(dt.UTC),
                          chat=Chat(id=CHAT_ID, type=chat_type), from_user=self.user(language_code),
                          **content)
        return await self._feed(Update(update_id=next(self._update_ids), message=message))

    async def press(self, data: str, language_code: str | None = "ru") -> list[TelegramMethod[Any]]:
        picker = Message(message_id=next(self._message_ids), date=dt.datetime.now(dt.UTC),
                         chat=Chat(id=CHAT_ID, type="private"), from_user=BOT_USER, text="…")
        callback = CallbackQuery(id=f"cb{next(self._update_ids)}", from_user=self.user(language_code),
                                 chat_instance="ci", message=picker, data=data)
        return await self._feed(Update(update_id=next(self._update_ids), callback_query=callback))

    async def _feed(self, update: Update) -> list[TelegramMethod[Any]]:
        start = len(self.session.requests)
        await self.dp.feed_update(self.bot, update)
        return self.session.requests[start:]


def sent(calls: list[TelegramMethod[Any]]) -> list[SendMessage]:
    return [c for c in calls if isinstance(c, SendMessage)]


def answers(calls: list[TelegramMethod[Any]]) -> list[AnswerCallbackQuery]:
    return [c for c in calls if isinstance(c, AnswerCallbackQuery)]


def edits(calls: list[TelegramMethod[Any]]) -> list[EditMessageText]:
    return [c for c in calls if isinstance(c, EditMessageText)]


def inline_buttons(markup: Any) -> list[tuple[str, str]]:
    """(label, callback data) of each button of an inline keyboard."""
    assert isinstance(markup, InlineKeyboardMarkup)
    return [(b.text, b.callback_data or "") for row in markup.inline_keyboard for b in row]


async def link(kz: Kezek, row: dict[str, Any], chat_id: int = CHAT_ID) -> int:
    """Link the application of ``row`` to ``chat_id`` with the parent's own contact."""
    target = await kz.link_by_contact(chat_id, row["number"], row["child_iin"], row["phone"], chat_id, chat_id)
    return target.application_id


def button_texts(markup: Any) -> list[str]:
    rows = markup.inline_keyboard if isinstance(markup, InlineKeyboardMarkup) else markup.keyboard
    return [b.text for row in rows for b in row]


async def stored_language(kz: Kezek, chat_id: int = CHAT_ID) -> str | None:
    async with kz.reading(with_calendar=False) as ctx:
        return await chats.get_language(ctx.session, chat_id)


# --- /start and the language picker ---------------------------------------------------------------

@pytest.mark.parametrize("language_code", ["ru", "kk", "en", None])
async def test_start_offers_both_languages(tg: Harness, language_code: str | None) -> None:
    calls = await tg.send(language_code, text="/start")
    [reply] = sent(calls)
    assert isinstance(reply.reply_markup, InlineKeyboardMarkup)
    # Kazakh first, as state services show them.
    assert button_texts(reply.reply_markup) == ["Қазақша", "Русский"]
    datas = [b.callback_data for row in reply.reply_markup.inline_keyboard for b in row]
    assert datas == ["lang:kk", "lang:ru"]
    # The prompt is in both languages, whatever the client reports: Kazakh above Russian.
    assert reply.text == "Тілді таңдаңыз:\nВыберите язык:"
    assert reply.text.splitlines() == [gettext("kk", "Please choose a language:"),
                                       gettext("ru", "Please choose a language:")]


async def test_picking_kazakh_stores_it_and_the_bot_speaks_kazakh(tg: Harness, kz: Kezek) -> None:
    assert await stored_language(kz) is None
    calls = await tg.press("lang:kk", language_code="ru")
    assert await stored_language(kz) == "kk"
    [ack] = answers(calls)
    assert ack.text == gettext("kk", "Language: {language}", language="Қазақша")
    [greeting] = sent(calls)
    assert greeting.chat_id == CHAT_ID
    assert greeting.text == gettext("kk", WELCOME)
    assert greeting.text != gettext("ru", WELCOME)  # Kazakh, not Russian
    assert isinstance(greeting.reply_markup, ReplyKeyboardMarkup)
    labels = button_texts(greeting.reply_markup)
    assert gettext("kk", "My queue status") in labels and gettext("kk", "Help") in labels
    # The next reply is Kazakh although the Telegram client still says 'ru'.
    [reply] = sent(await tg.send("ru", text="/help"))
    assert reply.text.startswith(gettext("kk", "Kezek helps you follow the kindergarten queue. Commands:"))
    async with kz.reading() as ctx:
        audit = (await ctx.session.execute(select(AuditEntry).where(AuditEntry.entity == "chat"))).scalars().all()
    assert [(a.action, a.entity_id, a.data["language"]) for a in audit] == [("set_language", CHAT_ID, "kk")]


async def test_switching_back_to_russian(tg: Harness, kz: Kezek) -> None:
    await tg.press("lang:kk")
    calls = await tg.press("lang:ru")
    assert await stored_language(kz) == "ru"
    [greeting] = sent(calls)
    assert greeting.text == gettext("ru", WELCOME)
    async with kz.reading() as ctx:
        row = await ctx.session.get(ChatRow, CHAT_ID)
    assert row is not None and row.created_at <= row.updated_at


@pytest.mark.parametrize("data", ["lang:xx", "lang:", "lang:kk:extra", "garbage", "seat:1:2", "x" * 64])
async def test_forged_or_stale_callback_changes_nothing(tg: Harness, kz: Kezek, data: str) -> None:
    calls = await tg.press(data, language_code="kk")
    assert await stored_language(kz) is None
    assert sent(calls) == []
    [ack] = answers(calls)
    assert ack.text == gettext("kk", STALE)
    assert ack.show_alert


async def test_forged_callback_keeps_a_chosen_language(tg: Harness, kz: Kezek) -> None:
    await tg.press("lang:kk")
    [ack] = answers(await tg.press("lang:en"))
    assert await stored_language(kz) == "kk"
    assert ack.text == gettext("kk", STALE)


# --- /help and the menu ---------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_help_is_localized(tg: Harness, lang: str) -> None:
    [reply] = sent(await tg.send(lang, text="/help"))
    assert reply.text.startswith(gettext(lang, "Kezek helps you follow the kindergarten queue. Commands:"))
    for command in ("/start", "/link", "/status", "/seats", "/settings", "/unlink", "/help"):
        assert command in reply.text
    assert gettext(lang, "this help") in reply.text
    assert gettext("ru", "this help") != gettext("kk", "this help")


# --- anything else --------------------------------------------------------------------------------

OTHER_MESSAGES: dict[str, dict[str, Any]] = {
    "sticker": {"sticker": Sticker(file_id="s", file_unique_id="su", type="regular", width=512,
                                   height=512, is_animated=False, is_video=False)},
    "photo": {"photo": [PhotoSize(file_id="p", file_unique_id="pu", width=90, height=90)]},
    "document": {"document": Document(file_id="d", file_unique_id="du")},
    "location": {"location": Location(latitude=43.238, longitude=76.945)},
    "long text": {"text": "Здравствуйте! " * 300},
    "unknown command": {"text": "/frobnicate"},
}


@pytest.mark.parametrize("lang", ["ru", "kk"])
@pytest.mark.parametrize("kind", list(OTHER_MESSAGES))
async def test_other_messages_get_a_hint(tg: Harness, kz: Kezek, lang: str, kind: str) -> None:
    [reply] = sent(await tg.send(lang, **OTHER_MESSAGES[kind]))
    if kind in ("photo", "document"):  # taken for privilege documents (tests/test_documents.py)
        from services.documents import DocumentsNeedLink

        assert reply.text == error_text(lang, DocumentsNeedLink())
    else:
        assert reply.text == gettext(lang, HINT)
    assert isinstance(reply.reply_markup, ReplyKeyboardMarkup)
    assert await stored_language(kz) is None


async def test_group_messages_are_ignored(tg: Harness) -> None:
    assert await tg.send("ru", chat_type="group", text="/start") == []


# --- the error boundary ---------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ru", "kk"])
async def test_a_failing_handler_gets_a_polite_answer(tg: Harness, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture, lang: str) -> None:
    import handlers.help

    def boom(_lang: str) -> str:
        raise RuntimeError("child IIN 230315500017 broke it")

    monkeypatch.setattr(handlers.help, "help_text", boom)
    with caplog.at_level(logging.ERROR, logger="kezek.bot"):
        [reply] = sent(await tg.send(lang, text="/help"))
    assert reply.text == gettext(lang, SORRY)
    assert "Traceback" not in reply.text and "RuntimeError" not in reply.text
    assert "RuntimeError" in caplog.text
    assert "230315500017" not in caplog.text  # no personal data in the log


async def test_a_failing_callback_is_answered_in_the_chats_language(
        tg: Harness, kz: Kezek, monkeypatch: pytest.MonkeyPatch) -> None:
    await tg.press("lang:kk")

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("database is on fire")

    monkeypatch.setattr(chats, "set_language", broken)
    calls = await tg.press("lang:ru")
    [ack] = answers(calls)
    assert ack.text == gettext("kk", SORRY) and ack.show_alert
    assert sent(calls) == []
    assert await stored_language(kz) == "kk"


def test_no_filter_or_handler_runs_in_a_worker_thread(kz: Kezek) -> None:
    """aiogram runs a filter or handler that is not a coroutine through asyncio.to_thread, on every
    check of every update (a State or a magic filter passed as is, a plain callable class): it
    cost more CPU than /status's whole database work. Every one of ours is awaited in the loop
    (handlers.filters)."""
    def routers(router: Any) -> Any:
        yield router
        for sub in router.sub_routers:
            yield from routers(sub)

    in_threads = []
    for router in routers(build_dispatcher(kz)):
        for name, observer in router.observers.items():
            for handler in observer.handlers:
                if not handler.awaitable:
                    in_threads.append(f"{router.name}.{name}: handler {handler.callback!r}")
                for f in handler.filters or []:
                    if not f.awaitable:
                        in_threads.append(f"{router.name}.{name}: filter {f.callback!r}")
            for f in observer._handler.filters or []:
                if not f.awaitable:
                    in_threads.append(f"{router.name}.{name}: router filter {f.callback!r}")
    assert in_threads == []


# --- what a parent sees before pressing Start -------------------------------------------------------

async def test_the_description_is_set_at_start_up_in_both_languages() -> None:
    """The description and the short description (before Start, and in a shared link)
    are set like the commands: Kazakh for Kazakh clients, Russian for Russian ones, and both
    languages, Kazakh first, for everyone else."""
    from aiogram.methods import SetMyDescription, SetMyShortDescription

    from bot.telegram.runner import DESCRIPTION, SHORT_DESCRIPTION, set_commands

    session = RecordingSession()
    await set_commands(Bot("42:TEST", session=session))
    long = {c.language_code: c.description for c in session.requests if isinstance(c, SetMyDescription)}
    short = {c.language_code: c.short_description for c in session.requests if isinstance(c, SetMyShortDescription)}
    assert set(long) == set(short) == {None, "kk", "ru"}
    for lang in ("kk", "ru"):
        assert long[lang] == gettext(lang, DESCRIPTION) != DESCRIPTION
        assert short[lang] == gettext(lang, SHORT_DESCRIPTION) != SHORT_DESCRIPTION
    assert long[None] == long["kk"] + "\n\n" + long["ru"]
    assert len(long[None]) <= 512 and all(len(text) <= 120 for text in short.values())
    assert short[None] == short["ru"]  # both would not fit in 120 characters
