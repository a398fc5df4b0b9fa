"""Field parsers for registry input (JSON objects or CSV rows, where everything is a string).

Each raises a typed ValidationError naming the field, so a bulk report can say line, field and
reason, and the front ends can localize it. A JSON ``true``/``false`` is never text, a code or a
number (in Python a bool is an int)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from services.calendar import ALMATY
from services.errors import InvalidField, MissingField

Row = Mapping[str, Any]

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def text(row: Row, field: str, *, max_len: int, required: bool = True, default: str = "") -> str:
    value = row.get(field)
    if _blank(value):
        if required:
            raise MissingField(field=field)
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):  # a bool is an int in Python
        raise InvalidField(field=field, reason="type")
    value = str(value).strip()
    if _CTRL.search(value):
        raise InvalidField(field=field, reason="characters")
    if len(value) > max_len:
        raise InvalidField(field=field, reason="too_long", max=max_len)
    return value


def code(row: Row, field: str, *, required: bool = True) -> str:
    value = text(row, field, max_len=40, required=required)
    if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*", value):
        raise InvalidField(field=field, reason="code")
    return value


def choice(row: Row, field: str, options: tuple[str, ...], *, default: str | None = None) -> str:
    value = row.get(field)
    if _blank(value):
        if default is None:
            raise MissingField(field=field)
        return default
    if not isinstance(value, str) or value.strip() not in options:
        raise InvalidField(field=field, reason="choice", options=", ".join(options))
    return value.strip()


def integer(row: Row, field: str, *, lo: int, hi: int, default: int | None = None) -> int:
    value = row.get(field)
    if _blank(value):
        if default is None:
            raise MissingField(field=field)
        return default
    if isinstance(value, bool):
        raise InvalidField(field=field, reason="type")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidField(field=field, reason="integer") from None
    if not lo <= number <= hi:
        raise InvalidField(field=field, reason="range", min=lo, max=hi)
    return number


def boolean(row: Row, field: str, *, default: bool) -> bool:
    value = row.get(field)
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "да", "иә"):
        return True
    if lowered in ("0", "false", "no", "нет", "жоқ"):
        return False
    raise InvalidField(field=field, reason="boolean")


def date(row: Row, field: str) -> dt.date:
    value = row.get(field)
    if _blank(value):
        raise MissingField(field=field)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raw = str(value).strip()
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-":  # ISO: the common case, far faster than strptime
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(raw, fmt).date()  # noqa: DTZ007 - a calendar date, not a moment
        except ValueError:
            continue
    raise InvalidField(field=field, reason="date")


def moment(row: Row, field: str) -> dt.datetime:
    """ISO 8601; a moment without an offset is Almaty local time."""
    value = row.get(field)
    if _blank(value):
        raise MissingField(field=field)
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidField(field=field, reason="datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ALMATY)
    return parsed.astimezone(dt.UTC)


def code_list(row: Row, field: str) -> list[str]:
    """A JSON list of codes, or a CSV cell with codes separated by ``;`` or ``,``."""
    value = row.get(field)
    if _blank(value):
        return []
    if isinstance(value, str):
        items = [v.strip() for v in re.split(r"[;,]", value) if v.strip()]
    elif isinstance(value, list | tuple):
        if any(isinstance(v, bool) or not isinstance(v, str | int) for v in value):
            raise InvalidField(field=field, reason="type")
        items = [str(v).strip() for v in value if not _blank(v)]
    else:
        raise InvalidField(field=field, reason="type")
    for item in items:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]*", item) or len(item) > 40:
            raise InvalidField(field=field, reason="code")
    if len(set(items)) != len(items):
        raise InvalidField(field=field, reason="duplicates")
    if len(items) > 20:
        raise InvalidField(field=field, reason="too_many", max=20)
    return items


# Rows checked between two turns of the event loop: a bulk load of thousands of rows (the API's
# limit, or a CLI file) never holds the bot and the API up for more than a few milliseconds.
IN_TURNS = 50


async def in_turns(rows: Iterable[Any], size: int = IN_TURNS) -> AsyncIterator[tuple[int, Any]]:
    """``enumerate(rows)``, letting the event loop turn after every ``size`` rows."""
    for index, row in enumerate(rows):
        if index and index % size == 0:
            await asyncio.sleep(0)
        yield index, row
