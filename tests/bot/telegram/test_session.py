"""bot.telegram.runner.KezekSession against a Bot API on loopback that records what it is sent: a call
without a file goes as a JSON body with the values aiogram's form would hold, a call with a file
is aiogram's multipart upload, and errors and timeouts come out as aiogram's exceptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.methods import SendMessage
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import web

from bot.telegram.runner import make_session

TOKEN = "42:TEST"
MESSAGE = {"message_id": 7, "date": 1767225600, "chat": {"id": 1001, "type": "private"},
           "from": {"id": 42, "is_bot": True, "first_name": "Kezek"}, "text": "…"}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []  # (method, content type, body)
        self.answer: tuple[int, dict[str, Any]] = (200, {"ok": True, "result": MESSAGE})
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.match_info["method"], request.content_type, await request.read()))
        await asyncio.sleep(self.delay)
        status, body = self.answer
        return web.json_response(body, status=status)


@pytest.fixture
async def api() -> AsyncIterator[tuple[Recorder, Bot]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    bot = Bot(TOKEN, session=make_session(f"http://127.0.0.1:{port}"))
    try:
        yield recorder, bot
    finally:
        await bot.session.close()
        await runner.cleanup()


async def test_a_message_goes_as_json_with_the_values_of_aiograms_form(api: tuple[Recorder, Bot]) -> None:
    recorder, bot = api
    text = "Заявление L0000123: номер в очереди 1 234 (−2 с 1 декабря) — «ясли-сад №1» & <b>"
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="История", callback_data="hist:1")]])
    method = SendMessage(chat_id=1001, text=text, reply_markup=keyboard, disable_notification=False)
    sent = await bot(method)
    assert sent.message_id == 7 and sent.chat.id == 1001  # the answer is read as before
    [(name, content_type, body)] = recorder.requests
    assert (name, content_type) == ("sendMessage", "application/json")
    form = {options["name"]: value for options, _headers, value in bot.session.build_form_data(bot, method)._fields}
    assert json.loads(body) == form  # every value as aiogram's form has it (text, JSON text)
    assert form["text"] == text and form["chat_id"] == "1001"
    assert json.loads(form["reply_markup"]) == {"inline_keyboard": [[{"text": "История", "callback_data": "hist:1"}]]}


async def test_a_file_goes_as_aiograms_multipart_upload(api: tuple[Recorder, Bot]) -> None:
    recorder, bot = api
    recorder.answer = (200, {"ok": True, "result": MESSAGE | {"document": {
        "file_id": "f1", "file_unique_id": "u1", "file_name": "referral.pdf"}}})
    await bot.send_document(1001, BufferedInputFile(b"%PDF-1.7 the referral", "referral.pdf"), caption="Направление")
    [(method, content_type, body)] = recorder.requests
    assert (method, content_type) == ("sendDocument", "multipart/form-data")
    assert b"%PDF-1.7 the referral" in body and "Направление".encode() in body


async def test_errors_and_timeouts_are_aiograms_exceptions(api: tuple[Recorder, Bot]) -> None:
    recorder, bot = api
    recorder.answer = (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(1001, "текст")
    recorder.answer, recorder.delay = (200, {"ok": True, "result": MESSAGE}), 2.0
    with pytest.raises(TelegramNetworkError, match="timeout"):
        await bot.send_message(1001, "текст", request_timeout=1)
