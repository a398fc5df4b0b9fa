"""Reading request bodies within bounds: JSON parsed with a byte cap, arrays counted while they are
parsed (413 past ``KEZEK_API_MAX_ROWS`` before any row is checked), rows checked against the
pydantic models of ``bot.api.schemas`` between turns of the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.api import schemas as shapes
from bot.api.answers import Answer
from bot.api.base import SETTINGS, ApiError
from services.calendar import ALMATY

# A body that is one object (seats, a documents decision, the clock) is small: past this, 413.
OBJECT_MAX_BYTES = 64 * 1024


# --- JSON ----------------------------------------------------------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(ALMATY).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_response(data: Answer | dict[str, Any], status: int = 200, *,
                  headers: dict[str, str] | None = None) -> web.Response:
    """An answer (``bot.api.answers``; a plain dict: the OpenAPI document) as JSON, moments in
    Almaty time."""
    if isinstance(data, Answer):
        data = data.body()
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


def _after_space(text: str, pos: int) -> int:
    """The position after the JSON white space at ``pos`` (``_SPACE`` matches the empty string too)."""
    match = _SPACE.match(text, pos)
    return match.end() if match is not None else pos
ROWS_PER_TURN = 200  # array items parsed between two turns of the event loop


async def _array_items(text: str, max_rows: int) -> list[Any]:
    """The items of a JSON array, parsed one at a time (the standard library's decoder) with a
    turn of the event loop every ``ROWS_PER_TURN``: 413 ``too_many_rows`` at item ``max_rows + 1``,
    before the rest is even parsed (a 4 MB ``[{},{},...]`` costs what 5,001 items cost)."""
    items: list[Any] = []
    pos = _after_space(text, 1)
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
            pos = _after_space(text, pos)
            if text.startswith(",", pos):
                pos = _after_space(text, pos + 1)
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
