"""Filters that aiogram awaits in the event loop.

aiogram 3 calls a filter that is neither a coroutine function nor an ``aiogram.filters.Filter``
through ``asyncio.to_thread`` — and a magic filter (``F.text``, ``F.chat.type == ...``) registered
as is resolves that way too: a thread hop per check, per router, per update. On /status that was a
dozen hops, more CPU than the database work. Every filter of Kezek's routers is therefore a
``Filter`` (``MenuButton``), a coroutine, or a magic filter wrapped in ``Magic``;
``tests/handlers/test_start.py`` walks the Dispatcher and fails on any filter or handler that would run
in a thread."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from magic_filter import MagicFilter


class Magic(Filter):
    """A magic filter resolved in the event loop (``Magic(F.text.startswith("/"))``)."""

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: Any) -> Any:
        return self.magic.resolve(event)

    def __str__(self) -> str:
        return f"Magic({self.magic!r})"
