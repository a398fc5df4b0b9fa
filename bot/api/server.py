"""The registry HTTP API (ARCHITECTURE.md; README.md "Registry API"): aiohttp under ``/api/v1``,
JSON in and out.

Handlers parse the request, call the service facade and render JSON; the rules live in
``services/``. Every call that changes something is one unit of work of the facade, so an error of
any kind writes nothing.

* Auth: ``Authorization: Bearer <token>`` (``KEZEK_API_TOKEN``), compared in constant time. A missing
  or malformed header, or a wrong token, gets 401 with ``WWW-Authenticate: Bearer`` (RFC 6750). No
  token configured: 403 for everything but the public routes. After ``FAILED_LIMIT`` wrong tokens
  from one address within ``FAILED_WINDOW`` seconds, that address gets 429 (``Retry-After``) for
  ``LOCKOUT`` seconds, whatever token it sends. Public: ``GET /api/v1/health`` and
  ``GET /api/v1/openapi.json`` only (SECURITY.md). ``GET /api/v1/referrals/verify?token=``
  (a kindergarten checks a referral's QR code) needs the token like the rest; the access log shows
  the route's pattern, never the query. Unknown routes are 404 and wrong methods 405 with or without a token
  (the OpenAPI document lists every route anyway).
* Errors are JSON ``{"error": code, "message": localized text}`` (``Accept-Language``: ru | kk,
  default ru); a validation error adds ``"errors": [{"index", "field", "reason", "detail",
  "message"}]`` (``index``: the position in the body's array, or null for a single object;
  ``reason``: the machine code of the error; ``detail``: its sub-reason, e.g. ``checksum``).
  400 bad JSON; 413 body over ``KEZEK_API_MAX_BODY_BYTES``; 422 a body of the wrong shape or a bad
  field; 404 an unknown application or referral; 409 what the rules forbid now; 500 anything
  unexpected (logged with the exception's type and the frames' locations only, never its message).
* Sandbox (``KEZEK_SANDBOX=1`` and a ``SandboxClock``): ``GET|POST /api/v1/sandbox/clock``; the
  routes do not exist otherwise (404).

* Operators: ``GET /api/v1/health`` is 200 ``{"status": "ok", "database": "ok"}``, or 503 when the
  database does not answer (``"database": "unavailable"``) or the senders are stuck (``"senders":
  "stuck"`` and ``"problems"``, in English; the rules: ``bot.metrics``). ``GET /api/v1/metrics`` is
  the Prometheus exposition (``bot.metrics``): counts only, no personal data, but it needs the
  bearer token like every route but health and the document (a scraper sends it: Prometheus's
  ``authorization: {credentials: ...}``); each scrape reads the outbox backlog once. The webhook
  server's ``/metrics`` stays internal (not proxied to the public).

The document of it all: ``bot/api/openapi.py``, served at ``GET /api/v1/openapi.json``."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot.api.auth import GUARD, AuthGuard, auth_middleware
from bot.api.base import API_PREFIX, KZ, MIN_TOKEN_LENGTH, SANDBOX_CLOCK, SANDBOX_LOCK, SETTINGS, ApiError, log
from bot.api.bodies import json_response
from bot.api.errors import (
    _frames,
    _route_of,
    api_error_body,
    errors_middleware,
    internal_error_body,
    request_language,
)
from bot.api.routes import (
    get_application,
    get_document_file,
    get_documents,
    get_outbox,
    get_referral_verify,
    get_sandbox_clock,
    get_staff,
    get_stats,
    health,
    metrics,
    openapi_document,
    post_admission,
    post_applications,
    post_calendar_days,
    post_districts,
    post_documents,
    post_invite_revoke,
    post_kindergartens,
    post_sandbox_clock,
    post_seats,
    post_staff_invite,
    post_staff_revoke,
)
from bot.config import Settings
from services.clock import SandboxClock
from services.kezek import Kezek

# --- the application -----------------------------------------------------------------------------

class RouteAccessLogger(AbstractAccessLogger):
    """Access log lines with the route's pattern, never the values in the path (application
    numbers), the headers, nor the client's address."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1f ms", request.method, _route_of(request), response.status, time * 1000)


class ApiRequestHandler(web.RequestHandler):
    """aiohttp's connection handler with the API's answer to a request aiohttp itself refuses
    before any middleware runs (a header with a NUL byte, a bad request line, a header too long):
    the JSON error of every other refusal, and one log line naming the kind of error only.
    aiohttp's own ``handle_error`` logs a traceback whose message quotes the offending header
    line (an ``Authorization`` header: the token) and answers it back as plain text."""

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is under way: nothing else can be sent
            raise ConnectionError("Response is sent already, cannot send another response")
        lang = request_language(request)
        if status >= 500:
            where = _frames(exc) if exc is not None else "-"
            log.error("API: a request failed outside the handlers: %s at %s", type(exc).__name__, where)
            body = internal_error_body(lang)
        else:
            log.warning("API: a malformed HTTP request refused (%s): %d", type(exc).__name__, status)
            body = api_error_body(lang, ApiError(status, "bad_request"))
        resp = json_response(body, status, headers={"Content-Language": lang})
        resp.force_close()
        return resp


class _ApiServer(web.Server):
    """aiohttp's low-level server making ``ApiRequestHandler`` connections (aiohttp has no
    setting for the handler class: issue aio-libs/aiohttp#3287)."""

    def __call__(self) -> web.RequestHandler:
        return ApiRequestHandler(self, loop=self._loop, **self._kwargs)


class ApiAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through ``_ApiServer``."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ApiServer  # the same object; only its connections' class changes
        return server


def make_api_app(kz: Kezek, settings: Settings, *, sandbox_clock: SandboxClock | None = None,
                 guard: AuthGuard | None = None) -> web.Application:
    """The registry API. The sandbox routes exist only with ``settings.sandbox`` and a
    ``sandbox_clock`` (the clock ``kz`` runs on). ``ValueError`` for a token shorter than 32
    characters."""
    if settings.api_token and len(settings.api_token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"KEZEK_API_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
    app = web.Application(client_max_size=settings.api_max_body_bytes,
                          middlewares=[errors_middleware, auth_middleware])
    app[KZ] = kz
    app[SETTINGS] = settings
    app[GUARD] = guard or AuthGuard()
    r = app.router
    p = API_PREFIX
    r.add_get(f"{p}/health", health, name="health", allow_head=False)
    r.add_get(f"{p}/openapi.json", openapi_document, name="openapi", allow_head=False)
    r.add_get(f"{p}/metrics", metrics, name="metrics", allow_head=False)
    r.add_post(f"{p}/districts", post_districts)
    r.add_post(f"{p}/kindergartens", post_kindergartens)
    r.add_post(f"{p}/applications", post_applications)
    # Application numbers are codes, which may hold "/" (2024/0001): the rest of the path is the number.
    r.add_get(f"{p}/applications/{{number:.+}}", get_application, allow_head=False)
    r.add_post(f"{p}/seats", post_seats)
    r.add_get(f"{p}/referrals/verify", get_referral_verify, allow_head=False)
    r.add_post(f"{p}/referrals/{{id}}/admission", post_admission)
    r.add_post(f"{p}/referrals/{{id}}/documents", post_documents)
    r.add_get(f"{p}/documents", get_documents, allow_head=False)
    r.add_get(f"{p}/documents/{{id}}/file", get_document_file, allow_head=False)
    r.add_post(f"{p}/calendar/days", post_calendar_days)
    r.add_post(f"{p}/staff/invites", post_staff_invite)
    r.add_get(f"{p}/staff", get_staff, allow_head=False)
    r.add_post(f"{p}/staff/revoke", post_staff_revoke)
    r.add_post(f"{p}/staff/invites/revoke", post_invite_revoke)
    r.add_get(f"{p}/stats", get_stats, allow_head=False)
    r.add_get(f"{p}/outbox", get_outbox, allow_head=False)
    if settings.sandbox and sandbox_clock is not None:
        app[SANDBOX_CLOCK] = sandbox_clock
        app[SANDBOX_LOCK] = asyncio.Lock()
        r.add_get(f"{p}/sandbox/clock", get_sandbox_clock, allow_head=False)
        r.add_post(f"{p}/sandbox/clock", post_sandbox_clock)
    return app


async def serve_api(kz: Kezek, settings: Settings, *, sandbox_clock: SandboxClock | None = None) -> None:
    """Serve the API on ``settings.api_host:api_port`` until cancelled; then stop taking
    connections, let requests in flight finish (up to 10 s) and close."""
    app = make_api_app(kz, settings, sandbox_clock=sandbox_clock)
    runner = ApiAppRunner(app, handle_signals=False, access_log_class=RouteAccessLogger, shutdown_timeout=10)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api_host, settings.api_port)
        await site.start()
        log.info("registry API on http://%s:%s%s (%s)", settings.api_host, settings.api_port, API_PREFIX,
                 "sandbox" if settings.sandbox and sandbox_clock is not None else "live")
        if not settings.api_token:
            log.warning("KEZEK_API_TOKEN is not set: the API refuses every request but health")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
