"""The API's errors as JSON: the request's language, a domain error's status and body, the HTTP
layer's own errors (``ApiError``), and the middleware that turns anything unexpected into a
500 without a traceback or a value in the log."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

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


def _api_error_body(lang: str, code: str, params: dict[str, Any]) -> dict[str, Any]:
    """The body of a refusal of the HTTP layer (its sentence: ``locales.errors.API_ERRORS``)."""
    return {"error": code, "message": error_text(lang, ApiError(0, code, **params))}


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
        body["errors"] = [_error_item(lang, e, i) for i, e in exc.errors[:MAX_REPORTED_ERRORS]]
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
