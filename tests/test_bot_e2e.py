"""End to end: ``kezek run`` as a separate process against a small Bot API stand-in.

The stand-in (aiohttp, 127.0.0.1, a free port) answers getMe, long-polls getUpdates, records
sendMessage and answerCallbackQuery, and says ok to anything else. The test plays the parent:
/start, then a press on the Kazakh button of the picker the bot sent. Every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import i18n

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123:ABC"
CHAT_ID = 7001
BOT_USER = {"id": 123, "is_bot": True, "first_name": "Kezek", "username": "kezek_bot"}
PARENT = {"id": CHAT_ID, "is_bot": False, "first_name": "Айгерим", "language_code": "ru"}
WELCOME = ("Welcome to Kezek! Here you can follow your child's place in the kindergarten queue and "
           "get notices about seats. Use the menu below.")
WAIT = 20.0  # seconds for the bot to react to one update
MAX_LONG_POLL = 2.0  # the stand-in holds getUpdates at most this long

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class BotApiStandIn:
    """Just enough of the Bot API for long polling and the /start flow."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._new = asyncio.Event()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self.closing = False

    # --- the test's side -------------------------------------------------------------------
    def queue(self, **update: Any) -> None:
        self.updates.append({"update_id": next(self._update_ids), **update})
        self._new.set()

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    # --- the bot's side --------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"},
                                     status=401)
        method = request.match_info["method"]
        params: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        if request.content_type == "application/json":
            params = await request.json()
        for key in ("reply_markup",):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        self.calls.append((method, params))
        lower = method.lower()
        if lower == "getme":
            result: Any = BOT_USER
        elif lower == "getupdates":
            result = await self._get_updates(params)
        elif lower == "sendmessage":
            result = {"message_id": next(self._message_ids), "date": int(time.time()),
                      "chat": {"id": int(params["chat_id"]), "type": "private"},
                      "from": BOT_USER, "text": params.get("text", "")}
        else:  # deleteWebhook, answerCallbackQuery, setMyCommands, ...
            result = True
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), MAX_LONG_POLL)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            ready = [u for u in self.updates if u["update_id"] >= offset]
            left = deadline - asyncio.get_running_loop().time()
            if ready or left <= 0 or self.closing:
                return ready
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[BotApiStandIn, str]]:
    api = BotApiStandIn()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        api.closing = True
        api._new.set()
        await asyncio.wait_for(runner.cleanup(), 15)


async def wait_for(check: Callable[[], Any], what: str, proc: asyncio.subprocess.Process, log: Path) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the bot's log after WAIT s
    or as soon as the bot process has died."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    pytest.fail(f"no {what} (bot exit code {proc.returncode}); bot log:\n"
                f"{log.read_text(errors='replace')[-4000:]}")


def buttons(params: dict[str, Any]) -> list[dict[str, Any]]:
    markup = params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


async def test_bot_process_answers_start_and_switches_to_kazakh(
        stand_in: tuple[BotApiStandIn, str], tmp_path: Path) -> None:
    api, base_url = stand_in
    db_url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    log = tmp_path / "bot.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEZEK_")}
    env.update(KEZEK_BOT_TOKEN=TOKEN, KEZEK_BOT_API_URL=base_url, KEZEK_LANG="ru",
               PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from bot.cli import main; main()", "--db", db_url, "run",
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        # The parent opens the bot.
        api.queue(message={"message_id": 1, "date": int(time.time()), "text": "/start",
                           "chat": {"id": CHAT_ID, "type": "private", "first_name": "Айгерим"},
                           "from": PARENT, "entities": [{"type": "bot_command", "offset": 0, "length": 6}]})
        picker = await wait_for(
            lambda: next((m for m in api.sent() if any(b["text"] == "Қазақша" for b in buttons(m))), None),
            "the language picker", proc, log)
        assert int(picker["chat_id"]) == CHAT_ID
        kazakh = next(b for b in buttons(picker) if b["text"] == "Қазақша")

        # ... and presses «Қазақша».
        api.queue(callback_query={
            "id": "cb1", "from": PARENT, "chat_instance": "ci", "data": kazakh["callback_data"],
            "message": {"message_id": 1, "date": int(time.time()), "text": picker["text"],
                        "chat": {"id": CHAT_ID, "type": "private"}, "from": BOT_USER}})
        greeting_text = i18n.gettext("kk", WELCOME)
        greeting = await wait_for(
            lambda: next((m for m in api.sent() if m.get("text") == greeting_text), None),
            "the Kazakh greeting", proc, log)
        assert int(greeting["chat_id"]) == CHAT_ID
        assert greeting_text != i18n.gettext("ru", WELCOME)
        await wait_for(lambda: api.sent("answerCallbackQuery"), "the callback answer", proc, log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 10)
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output[-4000:]  # SIGTERM stops polling gracefully
    assert "Traceback" not in output, output[-4000:]
