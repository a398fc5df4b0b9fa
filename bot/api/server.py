"""The registry HTTP API (DESIGN.md section 4; issue 5): aiohttp under ``/api/v1``, JSON in and out.

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
import datetime as dt
import hmac
import json
import logging
import math
import re
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot import metrics as metrics_module
from bot.api import schemas as shapes
from bot.config import Settings
from bot.sandbox.clock import MAX_MOVE, ClockMoveError, move_clock
from bot.sandbox.clock import parse_iso_duration as parse_duration
from locales import DEFAULT_LANGUAGE, LANGUAGES, N_, gettext
from locales.errors import error_text
from locales.formats import format_number
from services import queue as queue_service
from services import registry
from services.calendar import ALMATY
from services.clock import SandboxClock
from services.errors import (
    ApplicationNotFound,
    BulkRejected,
    InvalidField,
    KezekError,
    MissingField,
    NotFound,
    ReferralNotFound,
    ValidationError,
)
from services.facade import is_row_id
from services.kezek import Kezek

log = logging.getLogger("kezek.api")

API_PREFIX = "/api/v1"
MIN_TOKEN_LENGTH = 32
# Brute force: this many wrong tokens from one address within the window lock it out for a while.
FAILED_LIMIT = 20
FAILED_WINDOW = 60.0
LOCKOUT = 300.0

PUBLIC_ROUTES = frozenset({"health", "openapi"})  # SECURITY.md: nothing else without the token

KZ = web.AppKey("kezek", Kezek)
SETTINGS = web.AppKey("settings", Settings)
SANDBOX_CLOCK = web.AppKey("sandbox_clock", SandboxClock)
SANDBOX_LOCK = web.AppKey("sandbox_lock", asyncio.Lock)

# Messages of the API's own errors (the domain's come from error_text).
API_MESSAGES: dict[str, str] = {
    "unauthorized": N_("A valid access token is required: send it in the header "
                       "Authorization: Bearer <token>."),
    "api_not_configured": N_("The API is not configured: the server has no access token."),
    "too_many_attempts": N_("Too many requests with a wrong access token. Please try again later."),
    "bad_json": N_("The request body is not valid JSON."),
    "not_array": N_("The request body must be a JSON array of objects."),
    "not_object": N_("The request body must be a JSON object."),
    "method_not_allowed": N_("This method is not allowed here."),
    "body_too_large": N_("The request body is too large: at most {max} bytes."),
    "bad_request": N_("The request is not valid HTTP (e.g. a header with a forbidden character)."),
    "too_many_rows": N_("Too many records in one request: at most {max}. Send them in several requests."),
}

# A body that is one object (seats, a documents decision, the clock) is small: past this, 413.
OBJECT_MAX_BYTES = 64 * 1024


class ApiError(Exception):
    """An error of the HTTP layer (not of the domain): status, code, message params, headers."""

    def __init__(self, status: int, code: str, *, headers: dict[str, str] | None = None, **params: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.headers, self.params = status, code, headers or {}, params


# --- JSON ----------------------------------------------------------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(ALMATY).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_response(data: Any, status: int = 200, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, default=_default, ensure_ascii=False), status=status,
                        content_type="application/json", headers=headers)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(raw: bytes | str) -> Any:
    """JSON (NaN and Infinity refused, every string valid Unicode): 400 ``bad_json`` otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text.strip():
            raise ValueError("empty")
        body = json.loads(text, parse_constant=_refuse_constant)
        _check_text(body)
    except (ValueError, UnicodeError, RecursionError):
        raise ApiError(400, "bad_json") from None
    return body


async def read_json(request: web.Request, *, max_bytes: int | None = None) -> Any:
    """The request body as JSON: 413 past the size limit (``max_bytes``, or the application's),
    400 when it is not JSON."""
    if max_bytes is not None and (request.content_length or 0) > max_bytes:
        raise ApiError(413, "body_too_large", max=max_bytes)
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    if max_bytes is not None and len(raw) > max_bytes:
        raise ApiError(413, "body_too_large", max=max_bytes)
    return _loads(raw)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_SPACE = re.compile(r"[ \t\n\r]*")
ROWS_PER_TURN = 200  # array items parsed between two turns of the event loop


async def _array_items(text: str, max_rows: int) -> list[Any]:
    """The items of a JSON array, parsed one at a time (the standard library's decoder) with a
    turn of the event loop every ``ROWS_PER_TURN``: 413 ``too_many_rows`` at item ``max_rows + 1``,
    before the rest is even parsed (a 4 MB ``[{},{},...]`` costs what 5,001 items cost)."""
    items: list[Any] = []
    pos = _SPACE.match(text, 1).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        end = pos + 1
    else:
        while True:
            if len(items) == max_rows:
                raise ApiError(413, "too_many_rows", max=max_rows)
            item, pos = _DECODER.raw_decode(text, pos)
            items.append(item)
            if len(items) % ROWS_PER_TURN == 0:
                await asyncio.sleep(0)
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
                continue
            if text.startswith("]", pos):
                end = pos + 1
                break
            raise ValueError("expected , or ]")
    if text[end:].strip(" \t\n\r"):
        raise ValueError("extra data")
    _check_text(items)
    return items


def _check_text(value: Any) -> None:
    """``UnicodeError`` for a string that is not valid Unicode (a lone surrogate, which JSON's
    ``\\ud800`` escape can carry): it could never be stored."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())


async def read_array(request: web.Request) -> list[Any]:
    """A JSON array of at most ``KEZEK_API_MAX_ROWS`` items (413 ``too_many_rows`` past it,
    counted before any row is checked); 422 ``not_array`` for other JSON, 400 for bad JSON."""
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    try:
        text = raw.decode("utf-8")
    except UnicodeError:
        raise ApiError(400, "bad_json") from None
    start = text.lstrip(" \t\n\r")
    if not start.startswith("["):
        if len(raw) > OBJECT_MAX_BYTES:  # not an array, whatever it is: not parsed
            raise ApiError(422, "not_array")
        _loads(text)  # bad JSON: 400
        raise ApiError(422, "not_array")
    try:
        return await _array_items(start, request.app[SETTINGS].api_max_rows)
    except (ValueError, UnicodeError, RecursionError):
        raise ApiError(400, "bad_json") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    """A JSON object of at most ``OBJECT_MAX_BYTES`` (413 past it)."""
    body = await read_json(request, max_bytes=OBJECT_MAX_BYTES)
    if not isinstance(body, dict):
        raise ApiError(422, "not_object")
    return body


async def read_rows(request: web.Request, shape: type[shapes._Body],
                    also: Callable[[Any], object] | None = None) -> list[Any]:
    """A JSON array whose every item fits ``shape`` (``bot.api.schemas``) and passes ``also``
    (the services' parser of one row, for what the shape cannot say: an IIN's checksum), checked
    in chunks between turns of the event loop; ``BulkRejected`` listing the first 50 bad items
    and counting them all. What needs the database is checked by the services after."""
    rows = await read_array(request)
    await shapes.check_rows(shape, rows, also=also)
    return rows


# --- language and errors -------------------------------------------------------------------------

def request_language(request: web.Request) -> str:
    """The best of ru | kk by ``Accept-Language`` (q-values respected; ties: first listed), else ru."""
    best_q, best = 0.0, DEFAULT_LANGUAGE
    for part in request.headers.get("Accept-Language", "").split(","):
        tag, *params = [x.strip() for x in part.split(";")]
        code = tag.replace("_", "-").split("-")[0].lower()
        code = {"kz": "kk"}.get(code, code)
        if code not in LANGUAGES:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best_q, best = q, code
    return best


def _api_error_body(lang: str, code: str, params: dict[str, Any]) -> dict[str, Any]:
    msgid = API_MESSAGES.get(code)
    if msgid is None:
        return {"error": code, "message": error_text(lang, KezekError())}
    values = {k: format_number(lang, v) if isinstance(v, int) else v for k, v in params.items()}
    return {"error": code, "message": gettext(lang, msgid, **values)}


def _error_item(lang: str, exc: KezekError, index: int | None) -> dict[str, Any]:
    params = exc.params
    item: dict[str, Any] = {"index": index, "field": params.get("field"), "reason": exc.code}
    if isinstance(params.get("reason"), str):
        item["detail"] = params["reason"]
    item["message"] = error_text(lang, exc)
    return item


def domain_status(exc: KezekError) -> int:
    """422 bad input; 404 an unknown application or referral; 409 what the rules forbid now."""
    if isinstance(exc, BulkRejected | ValidationError):
        return 422
    if isinstance(exc, NotFound):
        return 404
    return 409


def domain_error_body(lang: str, exc: KezekError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.code, "message": error_text(lang, exc)}
    if isinstance(exc, BulkRejected):
        # The first MAX_REPORTED_ERRORS; error_count says how many there are in all.
        body["errors"] = [_error_item(lang, e, i) for i, e in exc.errors[:shapes.MAX_REPORTED_ERRORS]]
        body["error_count"] = int(exc.params.get("count", len(exc.errors)))
    elif isinstance(exc, ValidationError):
        body["errors"] = [_error_item(lang, exc, None)]
    else:
        # Rule violations: their params say when (a deadline, the next window) in machine form.
        details = {k: v for k, v in exc.params.items() if isinstance(v, str | int | float | bool)}
        if details:
            body["details"] = details
    return body


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _route_of(request: web.BaseRequest) -> str:
    """The route's pattern (``/api/v1/applications/{number}``): never the values in the path.
    "(no route)" for a request aiohttp could not parse (it never reached the router)."""
    try:
        match_info = request.match_info  # type: ignore[attr-defined]
        info = match_info.get_info() if match_info.http_exception is None else {}
    except (AssertionError, AttributeError):  # aiohttp asserts a routed request; a malformed one is not
        return "(no route)"
    return str(info.get("formatter") or info.get("path") or "(no route)")


def _frames(exc: BaseException) -> str:
    return " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                      for f in reversed(traceback.extract_tb(exc.__traceback__)))


@web.middleware
async def errors_middleware(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    lang = request_language(request)
    headers = {"Content-Language": lang}
    try:
        return await handler(request)
    except ApiError as exc:
        body = _api_error_body(lang, exc.code, exc.params)
        if exc.params:  # the limit in machine form: {"max": 5000}
            body["details"] = dict(exc.params)
        return json_response(body, exc.status, headers=headers | exc.headers)
    except KezekError as exc:
        return json_response(domain_error_body(lang, exc), domain_status(exc), headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status)
        if code == "not_found":
            body = {"error": code, "message": error_text(lang, NotFound())}
        elif code == "body_too_large":
            body = _api_error_body(lang, code, {"max": request.app[SETTINGS].api_max_body_bytes})
        elif code is not None:
            body = _api_error_body(lang, code, {})
        else:
            body = {"error": f"http_{exc.status}", "message": error_text(lang, ValidationError())}
        extra = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_response(body, exc.status, headers=headers | extra)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the API answers 500 and logs without personal data
        log.error("API %s %s failed: %s at %s", request.method, _route_of(request), type(exc).__name__,
                  _frames(exc))
        return json_response({"error": "internal", "message": error_text(lang, KezekError())}, 500,
                             headers=headers)


# --- auth ----------------------------------------------------------------------------------------

class AuthGuard:
    """Wrong tokens per client address in a sliding window; an address past the limit is locked out.
    In memory (one process); bounded: the least recently failing addresses are forgotten first."""

    def __init__(self, limit: int = FAILED_LIMIT, window: float = FAILED_WINDOW, lockout: float = LOCKOUT,
                 *, clock: Callable[[], float] = time.monotonic, max_addresses: int = 10_000) -> None:
        self.limit, self.window, self.lockout, self.clock = limit, window, lockout, clock
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def locked_for(self, address: str) -> float:
        """Seconds this address stays locked out (0: not locked)."""
        until = self._locked.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked[address]
            return 0.0
        return left

    def failed(self, address: str) -> None:
        now = self.clock()
        times = [t for t in self._failures.pop(address, []) if now - t < self.window]
        times.append(now)
        if len(times) >= self.limit:
            self._locked[address] = now + self.lockout
            times = []
            log.warning("API: %d wrong tokens within %.0f s from one address; locked out for %.0f s",
                        self.limit, self.window, self.lockout)
        if times:
            self._failures[address] = times
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        if len(self._locked) > self.max_addresses:
            for key in [k for k, until in self._locked.items() if until <= now]:
                del self._locked[key]


GUARD = web.AppKey("guard", AuthGuard)

_BEARER = re.compile(r"Bearer[ \t]+([^\s]+)[ \t]*", re.IGNORECASE)
_CHALLENGE = 'Bearer realm="kezek"'


@web.middleware
async def auth_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    if request.match_info.http_exception is not None or request.match_info.route.name in PUBLIC_ROUTES:
        return await handler(request)  # 404 / 405 / public
    token = request.app[SETTINGS].api_token
    if not token:
        raise ApiError(403, "api_not_configured")
    guard = request.app[GUARD]
    address = request.remote or "unknown"
    left = guard.locked_for(address)
    if left:
        raise ApiError(429, "too_many_attempts", headers={"Retry-After": str(math.ceil(left))})
    match = _BEARER.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": _CHALLENGE})
    if not hmac.compare_digest(match.group(1).encode("utf-8", "surrogateescape"), token.encode()):
        guard.failed(address)
        raise ApiError(401, "unauthorized",
                       headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'})
    return await handler(request)


# --- handlers ------------------------------------------------------------------------------------

ACTOR = "api"


async def health(request: web.Request) -> web.Response:
    """200 when the database answers and the senders are not stuck (``bot.metrics``), else 503."""
    state = await metrics_module.check_health(request.app[KZ])
    if not state.database:
        log.warning("API health: the database is unavailable")
        return json_response({"status": "unavailable", "database": "unavailable"}, 503)
    if not state.ok:
        return json_response({"status": "unavailable", "database": "ok", "senders": "stuck",
                              "problems": state.problems}, 503)
    return json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition of this process (the outbox backlog read now)."""
    body, content_type = await metrics_module.exposition(request.app[KZ], accept=request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi_document(request: web.Request) -> web.Response:
    from bot.api.openapi import openapi
    from services.offers import seat_birth_years

    settings, now = request.app[SETTINGS], request.app[KZ].clock.now()
    return json_response(openapi(max_rows=settings.api_max_rows, birth_years=seat_birth_years(now)))


async def post_districts(request: web.Request) -> web.Response:
    rows = await read_rows(request, shapes.District)
    return json_response({"upserted": await request.app[KZ].upsert_districts(rows, actor=ACTOR)})


async def post_kindergartens(request: web.Request) -> web.Response:
    rows = await read_rows(request, shapes.Kindergarten)
    return json_response({"upserted": await request.app[KZ].upsert_kindergartens(rows, actor=ACTOR)})


async def post_applications(request: web.Request) -> web.Response:
    now = request.app[KZ].clock.now()
    rows = await read_rows(request, shapes.Application, lambda row: queue_service.parse_application(row, now))
    report = await request.app[KZ].import_applications(rows, actor=ACTOR)
    return json_response({"created": report.created, "updated": report.updated, "unchanged": report.unchanged})


_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,39}")  # services.parsing.code


async def get_application(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    if not _NUMBER.fullmatch(number):  # no such number can exist (and NUL never reaches the database)
        raise ApplicationNotFound()
    async with request.app[KZ].reading(with_calendar=False) as ctx:
        status = await registry.application_status(ctx, number)
    return json_response(registry.as_dict(status))


async def post_seats(request: web.Request) -> web.Response:
    body = await read_object(request)
    shapes.check_object(shapes.SeatsRequest, body)
    kz = request.app[KZ]
    result = await kz.publish_seats(body, actor=ACTOR)
    async with kz.reading(with_calendar=False) as ctx:
        offers = await registry.offers_info(ctx, [offer_id for offer_id, _, _ in result.offers])
    return json_response({"seats": result.seat_ids, "private": result.private,
                          "offers": [registry.as_dict(o) for o in offers]})


def _row_id(raw: str) -> int | None:
    """A database row id written in a URL (decimal digits only), or None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not is_row_id(int(raw)):
        return None
    return int(raw)


def _referral_id(request: web.Request) -> int:
    referral_id = _row_id(request.match_info["id"])
    if referral_id is None:
        raise ReferralNotFound()
    return referral_id


async def _referral_answer(kz: Kezek, referral_id: int) -> web.Response:
    async with kz.reading(with_calendar=False) as ctx:
        info = await registry.referral_info(ctx, referral_id)
    return json_response({"referral": registry.as_dict(info)})


async def post_admission(request: web.Request) -> web.Response:
    referral_id = _referral_id(request)
    kz = request.app[KZ]
    await kz.admit(referral_id, actor=ACTOR)
    return await _referral_answer(kz, referral_id)


async def post_documents(request: web.Request) -> web.Response:
    referral_id = _referral_id(request)
    body = await read_object(request)
    shapes.check_object(shapes.DocumentsDecision, body)
    decision = body["decision"]
    kz = request.app[KZ]
    # A rejection may say why: "reason" (a code the parent reads in their language) and "note"
    # (the operator's words, quoted as they are); both optional, checked before anything changes.
    await kz.decide_documents(referral_id, decision == "accepted", actor=ACTOR, reason=body.get("reason"),
                              note=body.get("note"))
    return await _referral_answer(kz, referral_id)


_DOCUMENT_LIST_MAX = 500


async def get_documents(request: web.Request) -> web.Response:
    """The review queue: ``?status=pending`` (default; accepted | rejected | closed | all) and
    ``?referral=ID``, oldest first, at most 500."""
    referral: int | None = None
    raw = request.query.get("referral")
    if raw is not None and raw != "":
        referral = _row_id(raw)
        if referral is None:
            raise InvalidField(field="referral", reason="integer")
    found = await request.app[KZ].review_documents(request.query.get("status", "pending"), referral,
                                                   _DOCUMENT_LIST_MAX)
    return json_response({"documents": [d.as_dict() for d in found]}, headers={"Cache-Control": "no-store"})


async def get_document_file(request: web.Request) -> web.Response:
    """A document's bytes as received, with its type (checked on arrival, never the sender's word)."""
    from services.doc_storage import DocumentStoreError
    from services.documents import DocumentNotFound

    document_id = _row_id(request.match_info["id"])
    if document_id is None:
        raise DocumentNotFound()
    try:
        info, data = await request.app[KZ].document_file(document_id)
    except DocumentStoreError:
        log.error("API: the file of document %s is missing from the document store", document_id)
        raise
    return web.Response(body=data, headers={
        "Content-Type": info.mime, "Content-Disposition": f'attachment; filename="{info.filename}"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


async def get_referral_verify(request: web.Request) -> web.Response:
    """A kindergarten checks the code of a referral's QR code: 200 with the verdict (``state``:
    valid | admitted | annulled | expired | refused) and, when genuine, what to check at the door.
    Every kind of refusal (forged, altered, cut, another key or purpose, no such referral) gets
    the same answer; the reason is logged with a fingerprint of the token, never its text."""
    from handlers.views.referral_pdf import verdict_text
    from services.referral_check import verdict_as_dict

    token = request.query.get("token")
    if token is None or not token.strip():
        raise MissingField(field="token")
    verdict = await request.app[KZ].verify_referral(token)
    body = verdict_as_dict(verdict) | {"message": verdict_text(request_language(request), verdict)}
    return json_response(body, headers={"Cache-Control": "no-store"})


async def post_calendar_days(request: web.Request) -> web.Response:
    rows = await read_rows(request, shapes.CalendarDay, registry.calendar_day)
    async with request.app[KZ].unit(ACTOR) as ctx:
        count = await registry.set_calendar_days(ctx, rows)
    return json_response({"days": count})


async def get_stats(request: web.Request) -> web.Response:
    kz = request.app[KZ]
    stats = await kz.stats()
    report = await kz.outbox_report(failed_limit=0)
    stats["backlog"] = {
        "outbox_pending": int(report["outbox"].get("pending", 0)),
        "deliveries": {channel: {"pending": int(counts.get("pending", 0)), "due_now": counts["due_now"],
                                 "oldest_due_seconds": counts["oldest_due_seconds"],
                                 "failed": int(counts.get("failed", 0))}
                       for channel, counts in report["deliveries"].items()},
    }
    return json_response(stats)


async def get_outbox(request: web.Request) -> web.Response:
    return json_response(await request.app[KZ].outbox_report())


# --- sandbox -------------------------------------------------------------------------------------

def _sandbox_clock(request: web.Request) -> SandboxClock:
    return request.app[SANDBOX_CLOCK]


async def get_sandbox_clock(request: web.Request) -> web.Response:
    return json_response({"now": _sandbox_clock(request).now()})


_DURATION = re.compile(shapes.DURATION_PATTERN.removeprefix("^").removesuffix("$"))


def parse_clock_move(body: dict[str, Any], now: dt.datetime) -> tuple[dt.timedelta | None, dt.datetime | None]:
    """``{"advance": "PT3H"}`` or ``{"set": "2026-09-01T19:59:00+05:00"}`` (exactly one):
    forward only, at most ``MAX_MOVE`` ahead."""
    has_advance, has_set = body.get("advance") is not None, body.get("set") is not None
    if not has_advance and not has_set:
        raise MissingField(field="advance")
    if has_advance and has_set:
        raise InvalidField(field="set", reason="exclusive")
    if has_advance:
        raw = body["advance"]
        if not isinstance(raw, str):
            raise InvalidField(field="advance", reason="type")
        if raw.strip().startswith("-"):
            raise InvalidField(field="advance", reason="negative")
        if not _DURATION.fullmatch(raw):  # what the OpenAPI document says: no "P", "PT", weeks, spaces
            raise InvalidField(field="advance", reason="duration")
        try:
            delta = parse_duration(raw)
        except ValueError:
            raise InvalidField(field="advance", reason="duration") from None
        if delta > MAX_MOVE:
            raise InvalidField(field="advance", reason="range", min="PT0S", max="P366D")
        return delta, None
    raw = body["set"]
    if not isinstance(raw, str):
        raise InvalidField(field="set", reason="type")
    try:
        at = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField(field="set", reason="datetime") from None
    if at.tzinfo is None:
        raise InvalidField(field="set", reason="timezone")
    if at < now:
        raise InvalidField(field="set", reason="past")
    if at - now > MAX_MOVE:
        raise InvalidField(field="set", reason="range")
    return None, at


async def post_sandbox_clock(request: web.Request) -> web.Response:
    body = await read_object(request)
    clock = _sandbox_clock(request)
    async with request.app[SANDBOX_LOCK]:  # one move at a time
        advance, to = parse_clock_move(body, clock.now())
        settings = request.app[SETTINGS]
        try:
            result = await move_clock(request.app[KZ], clock, advance=advance, to=to,
                                              snapshot_hour=settings.snapshot_hour,
                                              digest_hour=settings.digest_hour)
        except ClockMoveError as exc:
            raise InvalidField(field="advance" if advance is not None else "set", reason="range") from exc
    # Moments in Almaty time, like every other answer of the API.
    result = dict(result)
    result["now"] = clock.now()
    result["sweeps"] = [{**step, "at": _moment(step["at"])} if isinstance(step, dict) and "at" in step else step
                        for step in result.get("sweeps", [])]
    return json_response(result)


def _moment(value: Any) -> Any:
    """A datetime, or an ISO 8601 string of one, as a datetime (rendered in Almaty time)."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


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
        lang = request_language(request)  # type: ignore[arg-type]
        if status >= 500:
            where = _frames(exc) if exc is not None else "-"
            log.error("API: a request failed outside the handlers: %s at %s", type(exc).__name__, where)
            body = {"error": "internal", "message": error_text(lang, KezekError())}
        else:
            log.warning("API: a malformed HTTP request refused (%s): %d", type(exc).__name__, status)
            body = _api_error_body(lang, "bad_request", {})
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
