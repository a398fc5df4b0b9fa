"""Webhook mode: the Telegram front as an aiohttp web application (several instances behind a
load balancer; DESIGN.md sections 2 and 5).

* ``POST <webhook_path>``: aiogram's ``SimpleRequestHandler``. A request whose
  ``X-Telegram-Bot-Api-Secret-Token`` header is not the configured secret gets 401 and is not
  processed. The update is handled before the response (Telegram waits up to a minute; aiogram moves
  a slower handler to the background after 55 s), so a graceful shutdown finishes it.
* ``GET /healthz``: 200 "ok" (for the load balancer).

``set_webhook`` is called once the server listens; the webhook is NOT deleted on shutdown: the other
instances keep serving it."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.config import Settings

log = logging.getLogger("kezek.bot")


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_webhook_app(dp: Dispatcher, bot: Bot, settings: Settings) -> web.Application:
    """The aiohttp application: the webhook route, /healthz, and the Dispatcher's start-up and
    shutdown hooks bound to the application's (they get ``bot``)."""
    if not settings.webhook_secret:
        raise ValueError("a webhook needs a secret token")
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=settings.webhook_secret,
                         handle_in_background=False).register(app, path=settings.webhook_path)
    setup_application(app, dp, bot=bot)
    return app


async def register_webhook(dp: Dispatcher, bot: Bot, settings: Settings) -> None:
    """Tell Telegram where to post: only the update types the handlers use; pending updates kept."""
    await bot.set_webhook(settings.webhook_full_url(), secret_token=settings.webhook_secret,
                          allowed_updates=dp.resolve_used_update_types(), drop_pending_updates=False)
    log.info("webhook registered at %s", settings.webhook_full_url())
