"""The Telegram front as a running process (``kezek run``): long polling or a webhook server.

* Long polling (no ``webhook_url``): one poller per token — Telegram answers a second one with 409
  Conflict (ARCHITECTURE.md, library traps); a webhook left over from webhook mode is removed first (pending
  updates are kept), since getUpdates does not work while one is set.
* Webhook (``webhook_url`` + ``webhook_secret``): an aiohttp server (``bot.telegram.webhook``); several
  instances may serve one token behind a load balancer, with Redis (``redis_url``) for the FSM,
  event isolation and the throttle.

Both stop cleanly on SIGINT/SIGTERM. ``background`` jobs (the outbox sender, the scheduler...) run as
tasks next to the bot and are cancelled on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response
from aiogram.types import BotCommandScopeDefault
from aiohttp import ClientError, ClientTimeout, web

from bot.config import Settings
from bot.telegram.app import build_dispatcher, make_storage
from bot.telegram.throttling import make_throttle
from handlers.help import bot_commands
from locales import DEFAULT_LANGUAGE, N_, gettext
from services.doc_check import DocumentChecker
from services.kezek import Kezek

log = logging.getLogger("kezek.bot")

LOOK_FLUSH_SECONDS = 0.25  # the looks of /status are written together at most this late

BackgroundJob = Callable[[Bot | None], Awaitable[None]]

# What a parent reads before pressing Start and in a shared link of the bot (Telegram's limits:
# 512 and 120 characters).
DESCRIPTION = N_(
    "Kezek follows your child's place in the kindergarten queue: the queue number and why it moves, an "
    "alert when your turn comes, choosing a seat and the referral, reminders of the deadlines. To begin, "
    "choose a language and link your application with its number and the child's IIN.")
SHORT_DESCRIPTION = N_(
    "Your child's place in the kindergarten queue, an alert when your turn comes, seats and referrals.")
DESCRIPTION_MAX, SHORT_DESCRIPTION_MAX = 512, 120


def bot_descriptions(lang: str | None) -> tuple[str, str]:
    """(description, short description) for clients set to ``lang``; None: everyone else, who get
    both languages, Kazakh first, where they fit (the language Telegram reports is often not the
    parent's), else Russian."""
    if lang is not None:
        return (gettext(lang, DESCRIPTION)[:DESCRIPTION_MAX],
                gettext(lang, SHORT_DESCRIPTION)[:SHORT_DESCRIPTION_MAX])
    texts = []
    for msgid, limit in ((DESCRIPTION, DESCRIPTION_MAX), (SHORT_DESCRIPTION, SHORT_DESCRIPTION_MAX)):
        both = "\n\n".join(gettext(code, msgid) for code in ("kk", "ru"))
        texts.append(both if len(both) <= limit else gettext(DEFAULT_LANGUAGE, msgid)[:limit])
    return texts[0], texts[1]


class MissingTokenError(RuntimeError):
    """No bot token is configured (KEZEK_BOT_TOKEN); the CLI shows a localized refusal."""


class WebhookConfigError(RuntimeError):
    """Webhook mode is asked for but cannot start (no or a malformed secret, a bad URL); the
    message is a short English reason naming the setting."""


class KezekSession(AiohttpSession):
    """aiogram's HTTP session, with two changes that the CPU of every message showed:

    * It keeps alive the answer model of each method it has called. aiogram checks every answer
      with ``Response[<the method's result type>]``; pydantic keeps such parametrised models only
      weakly, so after each garbage collection the next call built the model again: 403 rebuilds
      in 1,750 updates of ``kezek bench load --profile``, a sixth of the bot's CPU. One model per
      result type stays here for the life of the process.
    * A call without a file goes as a JSON body (the Bot API takes ``application/json``), with the
      very values aiogram would put in its form (``prepare_value``: nested objects as JSON text,
      the bot's defaults filled in, empty ones left out). aiogram's form is URL-encoded byte by
      byte in Python: 175 µs for a status card against 61 µs. A call with a file is aiogram's
      multipart upload as before."""

    _answers: ClassVar[dict[Any, Any]] = {}

    async def make_request(self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        files: dict[str, Any] = {}
        payload = {}
        for key, value in method.model_dump(warnings=False).items():
            value = self.prepare_value(value, bot=bot, files=files)
            if value:  # (as aiogram's build_form_data)
                payload[key] = value
        if files:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(url, data=self.json_dumps(payload), headers=_JSON_BODY,
                                    timeout=ClientTimeout(total=self.timeout if timeout is None else timeout)) as resp:
                raw_result = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        return self.check_response(bot=bot, method=method, status_code=resp.status, content=raw_result).result

    def check_response(self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str) -> Any:
        returning = method.__returning__
        if returning not in self._answers:
            self._answers[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


_JSON_BODY = {"Content-Type": "application/json"}


def make_session(api_url: str) -> KezekSession:
    """The HTTP session of a Bot talking to ``api_url`` (Telegram, a local Bot API server or a
    stand-in)."""
    return KezekSession(api=TelegramAPIServer.from_base(api_url.rstrip("/")))


def make_bot(settings: Settings) -> Bot:
    """A Bot talking to ``settings.bot_api_url`` (Telegram, a local Bot API server or a stand-in)."""
    token = settings.bot_token.strip()
    if not token:
        raise MissingTokenError("KEZEK_BOT_TOKEN is not set")
    return Bot(token, session=make_session(settings.bot_api_url))


async def set_commands(bot: Bot) -> None:
    """The command menu: Russian for everybody, Kazakh for clients set to Kazakh; the bot's
    description and short description (``bot_descriptions``) for everybody, Kazakh and Russian."""
    try:
        await bot.set_my_commands(bot_commands("ru"), scope=BotCommandScopeDefault())
        await bot.set_my_commands(bot_commands("kk"), scope=BotCommandScopeDefault(), language_code="kk")
    except Exception as exc:  # noqa: BLE001 - a missing menu must not keep the bot down
        log.warning("could not set the command menu: %s", type(exc).__name__)
    try:
        for lang in (None, "kk", "ru"):
            description, short = bot_descriptions(lang)
            await bot.set_my_description(description=description, language_code=lang)
            await bot.set_my_short_description(short_description=short, language_code=lang)
    except Exception as exc:  # noqa: BLE001 - nor a missing description
        log.warning("could not set the bot's description: %s", type(exc).__name__)


class BackgroundTasks:
    """Jobs started with the bot and cancelled when it stops. A job that fails is logged (its
    exception type and frames' locations only) and not restarted."""

    def __init__(self, jobs: Sequence[BackgroundJob]) -> None:
        self.jobs = list(jobs)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, bot: Bot | None) -> None:
        for job in self.jobs:
            name = getattr(job, "__qualname__", None) or type(job).__name__
            task = asyncio.ensure_future(job(bot))
            task.set_name(f"kezek:{name}")
            task.add_done_callback(self._finished)
            self.tasks.append(task)

    @staticmethod
    def _finished(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background job %s failed: %s", task.get_name(), type(exc).__name__)
        else:
            log.info("background job %s finished", task.get_name())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()


def _log_tasks() -> None:
    """SIGUSR1: where each task of the process is waiting, to the log (code locations only, no
    data): what an operator (or a test) reads when a process does not stop."""
    for task in asyncio.all_tasks():
        frames = "".join(f"\n  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"
                         for f in task.get_stack())
        log.warning("task %s waits at:%s", task.get_name(), frames or " (not started)")


def _stop(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()


def _stop_on_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop`` (SIGUSR1 logs the tasks, ``_log_tasks``); returns the undo."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _stop, sig, stop)
            installed.append(sig)

    if hasattr(signal, "SIGUSR1"):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, _log_tasks)
            installed.append(signal.SIGUSR1)

    def undo() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return undo


async def run_headless(background: Sequence[BackgroundJob], *, handle_signals: bool = True,
                       stop: asyncio.Event | None = None) -> None:
    """The background jobs alone (no bot serving updates) until SIGINT/SIGTERM or ``stop``."""
    stop = stop or asyncio.Event()
    undo = _stop_on_signals(stop) if handle_signals else (lambda: None)
    jobs = BackgroundTasks(background)
    jobs.start(None)
    try:
        await stop.wait()
    finally:
        undo()
        await jobs.stop()


async def run(settings: Settings, kezek: Kezek, *, background: Sequence[BackgroundJob] = (),
              handle_signals: bool = True, stop: asyncio.Event | None = None,
              extra: Sequence[BaseMiddleware] = ()) -> None:
    """Serve the bot until SIGINT/SIGTERM (or ``stop`` is set, or the task is cancelled); always
    closes the bot session, the FSM storage and the throttle's store. ``extra``: more outer update
    middlewares (``build_dispatcher``).

    Raises ``MissingTokenError`` or ``WebhookConfigError`` before any network I/O."""
    problem = settings.webhook_problem()
    if problem:
        raise WebhookConfigError(problem)
    bot = make_bot(settings)
    kezek.document_checker = DocumentChecker(settings.document_check_seconds, settings.document_check_workers)
    try:
        storage, isolation = make_storage(settings)
        throttle = make_throttle(settings, redis=getattr(storage, "redis", None))
        dp = build_dispatcher(kezek, storage=storage, events_isolation=isolation, throttle=throttle, extra=extra)
        # The numbers parents saw are written in groups (services.status.LookBuffer), and the
        # rest when the bot stops.
        kezek.buffer_looks(LOOK_FLUSH_SECONDS)
        jobs = BackgroundTasks(background)

        async def on_startup(bot: Bot) -> None:
            await set_commands(bot)
            jobs.start(bot)

        dp.startup.register(on_startup)
        dp.shutdown.register(jobs.stop)
        dp.shutdown.register(kezek.flush_looks)
        if settings.webhook_mode:
            await _serve_webhook(dp, bot, settings, handle_signals=handle_signals, stop=stop)
        else:
            await _poll(dp, bot, settings, handle_signals=handle_signals, stop=stop)
    finally:
        await bot.session.close()
    log.info("the bot has stopped")


async def _poll(dp: Dispatcher, bot: Bot, settings: Settings, *, handle_signals: bool,
                stop: asyncio.Event | None) -> None:
    stop = stop or asyncio.Event()
    # Our own signal handlers (not aiogram's): they also cover the start-up before polling begins.
    undo = _stop_on_signals(stop) if handle_signals else (lambda: None)
    polling: asyncio.Future[None] | None = None
    stopper = asyncio.ensure_future(stop.wait())
    try:
        log.info("long polling %s", settings.bot_api_url)
        await bot.delete_webhook(drop_pending_updates=False)
        polling = asyncio.ensure_future(dp.start_polling(bot, handle_signals=False, close_bot_session=True))
        await asyncio.wait({polling, stopper}, return_when=asyncio.FIRST_COMPLETED)
        while not polling.done():
            try:
                await dp.stop_polling()
            except RuntimeError:  # still starting up: polling is not running yet
                await asyncio.wait({polling}, timeout=0.05)
        await polling
    finally:
        stopper.cancel()
        undo()
        if polling is not None and not polling.done():  # cancelled from outside
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling


async def _serve_webhook(dp: Dispatcher, bot: Bot, settings: Settings, *, handle_signals: bool,
                         stop: asyncio.Event | None) -> None:
    from bot.telegram.webhook import WebhookAccessLogger, build_webhook_app, register_webhook

    stop = stop or asyncio.Event()
    undo = _stop_on_signals(stop) if handle_signals else (lambda: None)
    runner = web.AppRunner(build_webhook_app(dp, bot, settings), handle_signals=False, shutdown_timeout=30,
                           access_log_class=WebhookAccessLogger)
    try:
        await runner.setup()  # the Dispatcher's start-up: commands, background jobs
        site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
        await site.start()
        log.info("webhook server on %s:%s%s", settings.webhook_host, settings.webhook_port,
                 settings.webhook_path)
        await register_webhook(dp, bot, settings)
        await stop.wait()
        log.info("stopping the webhook server")
    finally:
        undo()
        # Stops listening, runs the Dispatcher's shutdown (jobs cancelled, storage closed) and lets
        # requests in flight finish. The webhook itself stays: other instances keep serving it.
        await runner.cleanup()


async def run_polling(settings: Settings, kezek: Kezek, *, handle_signals: bool = True,
                      background: Sequence[BackgroundJob] = ()) -> None:
    """Long polling whatever ``webhook_url`` says (kept for existing callers)."""
    await run(settings.model_copy(update={"webhook_url": ""}), kezek, background=background,
              handle_signals=handle_signals)
