"""End to end: ``kezek run`` (long polling) as a separate process against the Bot API stand-in of
tests/support/standin.py. The test plays the parent: /start, then a press on the Kazakh button of the
picker the bot sent. Every wait is bounded."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from locales import gettext
from tests.support.standin import START_UP, TOKEN, BotApiStandIn, BotProcess, until
from tests.support.telegram import WELCOME

CHAT_ID = 7001

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


async def test_bot_process_answers_start_and_switches_to_kazakh(api: BotApiStandIn, tmp_path: Path) -> None:
    bot = await BotProcess(tmp_path / "bot.log", f"sqlite:///{tmp_path / 'kezek.sqlite3'}",
                           {"KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url}).start()
    try:
        # The parent opens the bot.
        api.send_text(CHAT_ID, "/start")
        picker = await api.wait_for("sendMessage", lambda c: any(b["text"] == "Қазақша" for b in c.buttons()),
                                    alive=bot.alive, timeout=START_UP)
        assert picker.chat_id == CHAT_ID
        # ... and presses «Қазақша».
        api.press(CHAT_ID, picker.button("Қазақша")["callback_data"], picker)
        greeting_text = gettext("kk", WELCOME)
        greeting = await api.wait_for("sendMessage", lambda c: c.text == greeting_text, alive=bot.alive)
        assert greeting.chat_id == CHAT_ID
        assert greeting_text != gettext("ru", WELCOME)
        await api.wait_for("answerCallbackQuery", alive=bot.alive)
        # At start-up: the command menu in Russian (default) and Kazakh, no webhook (polling).
        menus = {c.params.get("language_code"): c.params["commands"] for c in api.sent("setMyCommands")}
        assert set(menus) == {None, "kk"}
        assert [c["command"] for c in menus[None]] == ["start", "link", "status", "seats", "settings",
                                                        "unlink", "help"]
        assert menus["kk"][-1]["description"] == gettext("kk", "this help")
        assert menus[None][-1]["description"] == gettext("ru", "this help")
        assert api.sent("deleteWebhook") and not api.sent("setWebhook")
        # SIGUSR1: the process logs where its tasks wait (what to read when it does not stop)
        # and goes on serving.
        bot.proc.send_signal(signal.SIGUSR1)
        await until(lambda: "waits at:" in bot.log(100_000), "the task list in the log", 20, bot)
        assert "kezek:" in bot.log(100_000)  # the background jobs by name
        api.send_text(CHAT_ID, "/help")
        await api.wait_for("sendMessage", alive=bot.alive)
    finally:
        code = await bot.stop()
    output = bot.log(100_000)
    assert code == 0, output[-4000:]  # SIGTERM stops polling gracefully
    assert "Traceback" not in output, output[-4000:]
    assert "is handled" not in output, output[-4000:]  # no line per update: /metrics counts them


async def test_the_stand_in_speaks_enough_bot_api(api: BotApiStandIn) -> None:
    """The stand-in through aiogram's real HTTP session: uploads, edits, webhooks, waits."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramConflictError
    from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
    try:
        assert (await bot.get_me()).username == "kezek_bot"
        keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a:1")]])
        sent = await bot.send_message(CHAT_ID, "hello", reply_markup=keyboard)
        assert api.sent()[-1].button("A")["callback_data"] == "a:1"
        edited = await bot.edit_message_text("bye", chat_id=CHAT_ID, message_id=sent.message_id)
        assert not isinstance(edited, bool) and edited.text == "bye" and edited.message_id == sent.message_id
        await bot.edit_message_reply_markup(chat_id=CHAT_ID, message_id=sent.message_id, reply_markup=None)
        assert await bot.delete_message(CHAT_ID, sent.message_id)
        photo = await bot.send_photo(CHAT_ID, BufferedInputFile(b"\x89PNG fake", filename="chart.png"),
                                     caption="queue")
        assert photo.photo and photo.caption == "queue"
        await bot.send_document(CHAT_ID, BufferedInputFile(b"a,b\n1,2\n", filename="history.csv"))
        [photo_call], [doc_call] = api.sent("sendPhoto"), api.sent("sendDocument")
        photo, doc = photo_call.params["photo"], doc_call.params["document"]
        assert (photo.filename, photo.content) == ("chart.png", b"\x89PNG fake")
        assert (doc.filename, doc.content) == ("history.csv", b"a,b\n1,2\n")
        assert [c.method for c in api.calls] == ["getMe", "sendMessage", "editMessageText", "editMessageReplyMarkup",
                                                 "deleteMessage", "sendPhoto", "sendDocument"]
        # Webhooks: set, inspect, getUpdates refused meanwhile, delete.
        await bot.set_webhook("https://kezek.example.test/hook", secret_token="s", allowed_updates=["message"])
        info = await bot.get_webhook_info()
        assert info.url == "https://kezek.example.test/hook" and info.allowed_updates == ["message"]
        with pytest.raises(TelegramConflictError):
            await bot.get_updates(timeout=0)
        await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        # The parent's side and waiting: an update is polled; wait_for sees only what came after it.
        update = api.send_contact(CHAT_ID, "+77010000001", CHAT_ID)
        [got] = await bot.get_updates(offset=0, timeout=1)
        assert got.update_id == update["update_id"] and got.message and got.message.contact
        assert got.message.contact.user_id == CHAT_ID
        with pytest.raises(TimeoutError):
            await api.wait_for("sendMessage", timeout=0.3)  # "hello" was before the contact
        await bot.send_message(CHAT_ID, "thanks")
        assert (await api.wait_for("sendMessage", lambda c: c.text == "thanks", timeout=5)).chat_id == CHAT_ID
        pressed = api.press(CHAT_ID, "a:1", api.sent()[0])
        assert pressed["callback_query"]["message"]["message_id"] == sent.message_id
        later = await bot.get_updates(offset=got.update_id + 1, timeout=1)
        assert [u.update_id for u in later] == [pressed["update_id"]]
    finally:
        await bot.session.close()


async def test_the_bots_session_keeps_its_answer_models_across_garbage_collections(api: BotApiStandIn) -> None:
    """aiogram checks each answer with ``Response[<result type>]``, which pydantic keeps weakly:
    aiogram's own session rebuilt the model after each garbage collection (milliseconds each, a
    sixth of the bot's CPU under load); the bot's session keeps one per result type. (An edit's
    answer, ``Message | bool``: no other part of Kezek holds that model.)"""
    import gc
    import weakref

    from aiogram import Bot
    from aiogram.methods import EditMessageText
    from aiogram.methods.base import Response

    from bot.telegram.runner import make_session

    session = make_session(api.base_url)
    bot = Bot(TOKEN, session=session)
    try:
        sent = await bot.send_message(CHAT_ID, "hello")
        edited = await bot.edit_message_text("bye", chat_id=CHAT_ID, message_id=sent.message_id)
        assert not isinstance(edited, bool) and edited.text == "bye"
        model = weakref.ref(Response[EditMessageText.__returning__])  # type: ignore[name-defined]
        gc.collect()
        assert model() is not None
    finally:
        await session.close()
