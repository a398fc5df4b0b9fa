"""The first slice of the Telegram front, driven through the real Dispatcher.

Updates go in with ``dp.feed_update``; the Bot's session records every Bot API call instead of
sending it and answers with canned results (tests/support/telegram.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiogram.types import (
    Document,
    InlineKeyboardMarkup,
    Location,
    PhotoSize,
    ReplyKeyboardMarkup,
    Sticker,
)
from sqlalchemy import select

from bot.telegram.app import build_dispatcher
from locales import gettext
from locales.errors import error_text
from services import chats
from services.kezek import Kezek
from storage.models import AuditEntry
from storage.models import Chat as ChatRow
from tests.support.telegram import CHAT_ID, HINT, SORRY, STALE, WELCOME, Harness, MockedBot, answers, button_texts, sent
from tests.support.world import stored_language

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
    if kind in ("photo", "document"):  # taken for privilege documents (tests/handlers/documents)
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

    bot = MockedBot()
    await set_commands(bot)
    session = bot.session
    long = {c.language_code: c.description for c in session.requests if isinstance(c, SetMyDescription)}
    short = {c.language_code: c.short_description for c in session.requests if isinstance(c, SetMyShortDescription)}
    assert set(long) == set(short) == {None, "kk", "ru"}
    for lang in ("kk", "ru"):
        assert long[lang] == gettext(lang, DESCRIPTION) != DESCRIPTION
        assert short[lang] == gettext(lang, SHORT_DESCRIPTION) != SHORT_DESCRIPTION
    assert long[None] == long["kk"] + "\n\n" + long["ru"]
    assert len(long[None]) <= 512 and all(len(text) <= 120 for text in short.values())
    assert short[None] == short["ru"]  # both would not fit in 120 characters
