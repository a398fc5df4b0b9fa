"""The API's errors as JSON: the request's language, a domain error's status and body, the HTTP
layer's own errors (``ApiError``), and the middleware that turns anything unexpected into a
500 without a traceback or a value in the log."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.api.answers import Error, ErrorItem
from bot.api.base import SETTINGS, ApiError, log
from bot.api.bodies import json_response
from locales import DEFAULT_LANGUAGE, LANGUAGES
from locales.errors import error_text
from services.errors import (
    MAX_REPORTED_ERRORS,
    BulkRejected,
    KezekError,
    NotFound,
    ValidationError,
)

# --- language and errors -------------------------------------------------------------------------

def request_language(request: web.BaseRequest) -> str:
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


def api_error_body(lang: str, exc: ApiError, *, details: bool = True) -> Error:
    """A refusal of the HTTP layer: its code, its sentence (``locales.errors.API_ERRORS``) and its
    params in machine form (``details``: ``{"max": 5000}``) unless ``details`` is false."""
    message = error_text(lang, exc)
    if details and exc.params:
        return Error(error=exc.code, message=message, details=dict(exc.params))
    return Error(error=exc.code, message=message)


def internal_error_body(lang: str) -> Error:
    """Anything unexpected: no detail at all."""
    return Error(error="internal", message=error_text(lang, KezekError()))


def _error_item(lang: str, exc: KezekError, index: int | None) -> ErrorItem:
    params = exc.params
    item = ErrorItem(index=index, field=params.get("field"), reason=exc.code, message=error_text(lang, exc))
    if isinstance(params.get("reason"), str):
        item.detail = params["reason"]
    return item


def domain_status(exc: KezekError) -> int:
    """422 bad input; 404 an unknown application or referral; 409 what the rules forbid now."""
    if isinstance(exc, BulkRejected | ValidationError):
        return 422
    if isinstance(exc, NotFound):
        return 404
    return 409


def domain_error_body(lang: str, exc: KezekError) -> Error:
    message = error_text(lang, exc)
    if isinstance(exc, BulkRejected):
        # The first MAX_REPORTED_ERRORS; error_count says how many there are in all.
        return Error(error=exc.code, message=message,
                     errors=[_error_item(lang, e, i) for i, e in exc.errors[:MAX_REPORTED_ERRORS]],
                     error_count=int(exc.params.get("count", len(exc.errors))))
    if isinstance(exc, ValidationError):
        return Error(error=exc.code, message=message, errors=[_error_item(lang, exc, None)])
    # Rule violations: their params say when (a deadline, the next window) in machine form.
    details = {k: v for k, v in exc.params.items() if isinstance(v, str | int | float | bool)}
    if details:
        return Error(error=exc.code, message=message, details=details)
    return Error(error=exc.code, message=message)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _route_of(request: web.BaseRequest) -> str:
    """The route's pattern (``/api/v1/applications/{number}``): never the values in the path.
    "(no route)" for a request aiohttp could not parse (it never reached the router)."""
    if not isinstance(request, web.Request):  # (a BaseRequest has no match_info)
        return "(no route)"
    try:
        match_info = request.match_info
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
        return json_response(api_error_body(lang, exc), exc.status, headers=headers | exc.headers)
    except KezekError as exc:
        return json_response(domain_error_body(lang, exc), domain_status(exc), headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status)
        if code == "not_found":
            body = Error(error=code, message=error_text(lang, NotFound()))
        elif code == "body_too_large":  # aiohttp's own limit: the sentence says it (no details)
            body = api_error_body(lang, ApiError(exc.status, code, max=request.app[SETTINGS].api_max_body_bytes),
                                  details=False)
        elif code is not None:
            body = api_error_body(lang, ApiError(exc.status, code))
        else:
            body = Error(error=f"http_{exc.status}", message=error_text(lang, ValidationError()))
        extra = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_response(body, exc.status, headers=headers | extra)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the API answers 500 and logs without personal data
        log.error("API %s %s failed: %s at %s", request.method, _route_of(request), type(exc).__name__,
                  _frames(exc))
        return json_response(internal_error_body(lang), 500, headers=headers)
