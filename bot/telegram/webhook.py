"""Webhook mode: the Telegram front as an aiohttp web application (several instances behind a
load balancer; ARCHITECTURE.md and bot/deploy/README.md).

* ``POST <webhook_path>``: aiogram's ``SimpleRequestHandler`` (``KezekRequestHandler``). A request
  whose ``X-Telegram-Bot-Api-Secret-Token`` header is not the configured secret (any header: a
  non-ASCII one too, compared as bytes in constant time) gets 401 and is not processed; with the
  right secret, a body that is not JSON or not a valid Update gets 400, and the log says the
  error's type only (pydantic's message would quote the fields' values: an IIN a parent typed).
  The update is handled before the response (Telegram waits up to a minute; aiogram moves
  a slower handler to the background after 55 s), so a graceful shutdown finishes it.
* ``GET /healthz``: 200 "ok" (for the load balancer); 503 with a line of text saying why when the
  database does not answer or the senders are stuck (the rules: ``bot.metrics``; with no service
  facade to ask, "ok" as long as the process serves).
* ``GET /metrics``: the Prometheus exposition of this process (``bot.metrics``): updates handled,
  their latency, the outbox backlog read at scrape time, deliveries, sender rounds, scheduled jobs.
  No token: counts only, no personal data; keep the port internal (or filter the path at the
  proxy) if Telegram's side of the load balancer is public.

The access log (``WebhookAccessLogger``) has a line for each request that did not succeed (a forged
secret's 401, a 5xx, an unknown path), not one per update: the updates are counted in ``/metrics``,
and a line per update cost more CPU than the bare echo bot spends on a whole update.

``set_webhook`` is called once the server listens; the webhook is NOT deleted on shutdown: the other
instances keep serving it."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pydantic import ValidationError

from bot import metrics as metrics_module
from bot.config import Settings
from bot.telegram.middlewares import ContextMiddleware
from services.kezek import Kezek

log = logging.getLogger("kezek.bot")

KZ = web.AppKey("kezek", Kezek)


def kezek_of(dp: Dispatcher) -> Kezek | None:
    """The service facade the Dispatcher's handlers use (its context middleware's)."""
    for middleware in dp.update.outer_middleware:
        if isinstance(middleware, ContextMiddleware):
            return middleware.kezek
    return None


async def healthz(request: web.Request) -> web.Response:
    kz = request.app.get(KZ)
    if kz is None:
        return web.Response(text="ok")
    state = await metrics_module.check_health(kz)
    if not state.database:
        return web.Response(text="unavailable: the database does not answer", status=503)
    if not state.ok:
        return web.Response(text="unavailable: the senders are stuck: " + "; ".join(state.problems), status=503)
    return web.Response(text="ok")


async def metrics(request: web.Request) -> web.Response:
    body, content_type = await metrics_module.exposition(request.app.get(KZ), accept=request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


class BadUpdate(Exception):
    """A webhook body that is not a Telegram update; its message is the reason's type only."""


class KezekRequestHandler(SimpleRequestHandler):
    """aiogram's handler for one bot, with the refusals a forged or broken post deserves."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        # aiogram's secrets.compare_digest raises TypeError on a non-ASCII str (a 500): compare
        # the bytes (surrogatepass: aiohttp keeps undecodable header bytes as lone surrogates).
        if not self.secret_token:
            return False  # (build_webhook_app never starts without one)
        given = telegram_secret_token.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self.secret_token.encode("utf-8"))

    async def _update(self, bot: Bot, request: web.Request) -> Update:
        try:
            body: Any = await request.json(loads=bot.session.json_loads)
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
            raise BadUpdate(type(exc).__name__) from None
        if not isinstance(body, dict):
            raise BadUpdate(f"a JSON {type(body).__name__}, not an object")
        try:
            update = Update.model_validate(body, context={"bot": bot})
        except ValidationError as exc:  # str(exc) quotes the input's values: never logged
            raise BadUpdate(f"ValidationError ({exc.error_count()} fields)") from None
        except (ValueError, TypeError, RecursionError) as exc:
            raise BadUpdate(type(exc).__name__) from None
        try:
            update.event_type  # noqa: B018 - raises when the update carries no event aiogram knows
        except UpdateTypeLookupError:
            # (Telegram sends only the allowed types; aiogram would warn with the whole update)
            raise BadUpdate("no known update type") from None
        return update

    async def handle(self, request: web.Request) -> web.Response:
        try:
            return await super().handle(request)
        except BadUpdate as exc:
            log.warning("webhook: refused a post that is not an update: %s", exc)
            return web.Response(text="Bad Request", status=400)

    __call__ = handle

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        update = await self._update(bot, request)
        result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(bot, update, **self.data)
        return web.Response(body=self._build_response_writer(bot=bot, result=result))

    # (Kezek answers Telegram after handling the update, ``handle_in_background=False``; were it
    # built otherwise, the same checked path serves.)
    _handle_request_background = _handle_request


class WebhookAccessLogger(AbstractAccessLogger):
    """Logs the requests that did not succeed: method, path, status and time (the webhook's path
    carries no personal data, and the client is Telegram or the proxy)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status >= 300:
            self.logger.info("%s %s %s %.1f ms", request.method, request.path, response.status, time * 1000)


def build_webhook_app(dp: Dispatcher, bot: Bot, settings: Settings, *, kz: Kezek | None = None) -> web.Application:
    """The aiohttp application: the webhook route, /healthz, /metrics, and the Dispatcher's start-up
    and shutdown hooks bound to the application's (they get ``bot``). ``kz``: the facade health and
    the backlog gauges read (by default the Dispatcher's, see ``bot.telegram.app.build_dispatcher``)."""
    if not settings.webhook_secret:
        raise ValueError("a webhook needs a secret token")
    app = web.Application()
    kz = kz or kezek_of(dp)
    if kz is not None:
        app[KZ] = kz
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    KezekRequestHandler(dispatcher=dp, bot=bot, secret_token=settings.webhook_secret,
                        handle_in_background=False).register(app, path=settings.webhook_path)
    setup_application(app, dp, bot=bot)
    return app


async def register_webhook(dp: Dispatcher, bot: Bot, settings: Settings) -> None:
    """Tell Telegram where to post: only the update types the handlers use; pending updates kept."""
    await bot.set_webhook(settings.webhook_full_url(), secret_token=settings.webhook_secret,
                          allowed_updates=dp.resolve_used_update_types(), drop_pending_updates=False)
    log.info("webhook registered at %s", settings.webhook_full_url())
