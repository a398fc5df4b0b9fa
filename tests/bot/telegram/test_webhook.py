"""Webhook mode: ``kezek run`` as a separate process with KEZEK_WEBHOOK_URL set, its Bot API calls
going to the stand-in (tests/support/standin.py), the test posting updates the way Telegram does.
Also: the refusal of a bad webhook configuration, and the runner's background jobs."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Bot

from bot.config import Settings
from bot.telegram.runner import WebhookConfigError, run
from locales import gettext
from services.kezek import Kezek
from tests.support.pgcluster import free_port
from tests.support.standin import TOKEN, BotApiStandIn, BotProcess

SECRET = "s3cret-Token_1"
PUBLIC = "https://kezek.example.test"
CHAT_ID = 7001
INTRUDER = 8001

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn() as stand_in:
        yield stand_in


def picker(call: Any) -> bool:
    return any(b.get("text") == "Қазақша" for b in call.buttons())


async def test_webhook_process(api: BotApiStandIn, tmp_path: Path) -> None:
    port = free_port()
    bot = await BotProcess(tmp_path / "bot.log", f"sqlite:///{tmp_path / 'kezek.sqlite3'}", {
        "KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_WEBHOOK_URL": PUBLIC,
        "KEZEK_WEBHOOK_SECRET": SECRET, "KEZEK_WEBHOOK_HOST": "127.0.0.1",
        "KEZEK_WEBHOOK_PORT": str(port)}).start()
    base = f"http://127.0.0.1:{port}"
    try:
        # Start-up: the webhook is registered (after the server listens) with the secret.
        hook = await api.wait_for("setWebhook", alive=bot.alive, since=0)
        assert hook.params["url"] == PUBLIC + "/telegram/webhook"
        assert hook.params["secret_token"] == SECRET
        assert {"message", "callback_query"} <= set(hook.params["allowed_updates"])
        assert str(hook.params.get("drop_pending_updates", "false")).lower() == "false"
        assert {c.params.get("language_code") for c in api.sent("setMyCommands")} == {None, "kk"}
        assert not api.sent("getUpdates")  # no polling in webhook mode

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200 and await resp.text() == "ok"

            # Forged posts: a wrong secret and none at all.
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
                            {"X-Telegram-Bot-Api-Secret-Token": ""}, {}):
                forged = api.send_text(INTRUDER, "/start", deliver=False)
                async with http.post(f"{base}/telegram/webhook", json=forged, headers=headers) as resp:
                    assert resp.status == 401

            # Telegram's own post.
            update = api.send_text(CHAT_ID, "/start", deliver=False)
            async with http.post(f"{base}/telegram/webhook", json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
                assert resp.status == 200
            reply = await api.wait_for("sendMessage", picker, alive=bot.alive)
            assert reply.chat_id == CHAT_ID
            assert gettext("ru", "Please choose a language:") in (reply.text or "")

            # A press on «Қазақша» through the webhook too.
            press = api.press(CHAT_ID, reply.button("Қазақша")["callback_data"], reply, deliver=False)
            async with http.post(f"{base}/telegram/webhook", json=press,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
                assert resp.status == 200
            await api.wait_for("answerCallbackQuery", alive=bot.alive)

        # The forged posts were never handled (they came first; the good ones are answered).
        assert [c for c in api.calls if c.params.get("chat_id") in (INTRUDER, str(INTRUDER))] == []
    finally:
        code = await bot.stop()
    output = bot.log(100_000)
    assert code == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert not api.sent("deleteWebhook")  # the other instances keep serving the webhook
    # The access log has the three forged posts, not the updates that were handled.
    access = [line for line in output.splitlines() if "aiohttp.access" in line]
    assert len([line for line in access if "POST /telegram/webhook 401" in line]) == 3, access
    assert not [line for line in access if " 200 " in line], access


async def test_webhook_needs_a_proper_secret(api: BotApiStandIn, tmp_path: Path) -> None:
    """The process refuses (exit 2, naming the setting); the other bad secrets: test_webhook_settings."""
    secret = "with space"
    bot = await BotProcess(tmp_path / "bot.log", f"sqlite:///{tmp_path / 'kezek.sqlite3'}", {
        "KEZEK_BOT_TOKEN": TOKEN, "KEZEK_BOT_API_URL": api.base_url, "KEZEK_WEBHOOK_URL": PUBLIC,
        "KEZEK_WEBHOOK_SECRET": secret, "KEZEK_WEBHOOK_PORT": str(free_port())}).start()
    assert bot.proc is not None
    code = await asyncio.wait_for(bot.proc.wait(), 30)
    assert code == 2, bot.log()
    assert "KEZEK_WEBHOOK_SECRET" in bot.log()
    assert api.calls == []  # refused before talking to Telegram


@pytest.mark.parametrize(("changes", "problem"), [
    ({"webhook_secret": "ok_Secret-1"}, None),
    ({"webhook_secret": "x" * 256}, None),
    ({"webhook_secret": ""}, "KEZEK_WEBHOOK_SECRET"),
    ({"webhook_secret": "x" * 257}, "KEZEK_WEBHOOK_SECRET"),
    ({"webhook_secret": "with space"}, "KEZEK_WEBHOOK_SECRET"),
    ({"webhook_secret": "слово"}, "KEZEK_WEBHOOK_SECRET"),
    ({"webhook_secret": "semi;colon"}, "KEZEK_WEBHOOK_SECRET"),
    ({"webhook_secret": "ok", "webhook_url": "http://plain.example"}, "KEZEK_WEBHOOK_URL"),
    ({"webhook_secret": "ok", "webhook_path": "hook"}, "KEZEK_WEBHOOK_PATH"),
])
def test_webhook_settings(changes: dict[str, str], problem: str | None) -> None:
    settings = Settings(_env_file=None, **{"webhook_url": PUBLIC, **changes})  # type: ignore[arg-type]
    found = settings.webhook_problem()
    assert (found is None) if problem is None else (problem in (found or ""))
    assert Settings(_env_file=None).webhook_problem() is None  # polling: nothing to check


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEZEK_ADMIN_IDS", " 11, 22,33 ")
    monkeypatch.setenv("KEZEK_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("KEZEK_THROTTLE_RATE", "5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.admin_ids == [11, 22, 33]
    assert settings.webhook_port == 9443 and settings.throttle_rate == 5
    monkeypatch.setenv("KEZEK_ADMIN_IDS", "")
    assert Settings(_env_file=None).admin_ids == []  # type: ignore[call-arg]
    for name in ("KEZEK_ADMIN_IDS", "KEZEK_WEBHOOK_PORT", "KEZEK_THROTTLE_RATE"):
        monkeypatch.delenv(name)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.redis_url, defaults.webhook_url, defaults.webhook_path, defaults.webhook_host,
            defaults.webhook_port) == ("", "", "/telegram/webhook", "127.0.0.1", 8080)


async def test_in_process_refusal_before_any_io(kz: Kezek) -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN, webhook_url=PUBLIC,  # type: ignore[call-arg]
                        bot_api_url="http://127.0.0.1:9")
    with pytest.raises(WebhookConfigError):
        await run(settings, kz, handle_signals=False)


@pytest.mark.parametrize("webhook", [False, True])
async def test_background_jobs_run_with_the_bot_and_are_cancelled(
        api: BotApiStandIn, kz: Kezek, webhook: bool) -> None:
    started: asyncio.Queue[Bot] = asyncio.Queue()
    cancelled: list[str] = []

    async def job(bot: Bot) -> None:
        await started.put(bot)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append("job")
            raise

    async def quick(_bot: Bot) -> None:
        cancelled.append("quick done")

    extra = {"webhook_url": PUBLIC, "webhook_secret": SECRET, "webhook_port": free_port()} if webhook else {}
    settings = Settings(_env_file=None, bot_token=TOKEN, bot_api_url=api.base_url, **extra)  # type: ignore[arg-type]
    stop = asyncio.Event()
    serving = asyncio.create_task(run(settings, kz, background=[job, quick], handle_signals=False, stop=stop))
    bot = await asyncio.wait_for(started.get(), 20)
    assert isinstance(bot, Bot) and bot.token == TOKEN
    await api.wait_for("setWebhook" if webhook else "getUpdates", since=0)
    assert cancelled == ["quick done"]
    stop.set()
    await asyncio.wait_for(serving, 20)
    assert cancelled == ["quick done", "job"]


# --- bad posts: 401 / 400, never a 500, and no field value in the log -------------

IIN_IN_A_BAD_UPDATE = "230315650441"


async def raw_post(port: int, path: str, headers: list[bytes], body: bytes) -> tuple[int, bytes]:
    """An HTTP/1.1 POST written byte by byte (a client library would refuse a non-ASCII header):
    the status code and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Content-Type: application/json",
                f"Content-Length: {len(body)}".encode(), b"Connection: close", *headers]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[-1]


async def test_bad_posts_get_401_or_400_and_the_log_keeps_no_values(
        api: BotApiStandIn, kz: Kezek, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    settings = Settings(_env_file=None, bot_token=TOKEN, bot_api_url=api.base_url,  # type: ignore[call-arg]
                        webhook_url=PUBLIC, webhook_secret=SECRET, webhook_port=port)
    stop = asyncio.Event()
    serving = asyncio.create_task(run(settings, kz, handle_signals=False, stop=stop))
    try:
        await api.wait_for("setWebhook", since=0)
        good = json.dumps(api.send_text(CHAT_ID, "/start", deliver=False)).encode()
        path = "/telegram/webhook"
        right = b"X-Telegram-Bot-Api-Secret-Token: " + SECRET.encode()
        # A secret header that is not ASCII (UTF-8 words, a Latin-1 byte): not the secret.
        for header in ("X-Telegram-Bot-Api-Secret-Token: секрет".encode(),
                       b"X-Telegram-Bot-Api-Secret-Token: " + SECRET.encode() + b"\xff",
                       "X-Telegram-Bot-Api-Secret-Token: s3cret-Token_1é".encode()):
            status, _ = await raw_post(port, path, [header], good)
            assert status == 401
        # The right secret, a body that is not an update.
        bad_update = {"update_id": 5, "message": {"message_id": "not a number", "date": "yesterday",
                                                  "chat": {"id": CHAT_ID, "type": "private"},
                                                  "text": IIN_IN_A_BAD_UPDATE}}
        for body in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"[" * 100_000,
                     json.dumps(bad_update).encode(), json.dumps({"update_id": IIN_IN_A_BAD_UPDATE}).encode()):
            status, answer = await raw_post(port, path, [right], body)
            assert status == 400, (body[:40], answer[:200])
            assert IIN_IN_A_BAD_UPDATE.encode() not in answer
        # The server still serves Telegram's own posts.
        status, _ = await raw_post(port, path, [right], good)
        assert status == 200
        await api.wait_for("sendMessage", picker)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 20)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text[-4000:]
    assert "Traceback" not in caplog.text
    assert IIN_IN_A_BAD_UPDATE not in caplog.text and "not a number" not in caplog.text
    refusals = [r.getMessage() for r in caplog.records if r.name == "kezek.bot" and "webhook" in r.getMessage()]
    assert any("ValidationError" in m for m in refusals), refusals
    assert any("JSONDecodeError" in m for m in refusals), refusals
