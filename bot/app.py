"""Composition of the Telegram front: the Dispatcher with its middlewares and routers."""

from __future__ import annotations

from aiogram import Dispatcher, F
from aiogram.enums import ChatType

from bot.middlewares import ContextMiddleware, ErrorBoundaryMiddleware
from handlers import claim, fallback, link, seats, settings, start, status, unlink
from handlers import help as help_handlers
from services.kezek import Kezek


def build_dispatcher(kezek: Kezek) -> Dispatcher:
    """A Dispatcher whose handlers get ``kz`` (the service facade) and ``lang`` ('ru' | 'kk')."""
    dp = Dispatcher()
    # Outer middlewares run in registration order: the error boundary wraps the context lookup.
    dp.update.outer_middleware(ErrorBoundaryMiddleware())
    dp.update.outer_middleware(ContextMiddleware(kezek))
    # Kezek talks to parents one to one; messages in groups are left alone.
    dp.message.filter(F.chat.type == ChatType.PRIVATE)
    # Routers with a dialogue (FSM) catch-all come before the plain command routers.
    dp.include_routers(start.build_router(), help_handlers.build_router(), link.build_router(),
                       settings.build_router(), unlink.build_router(), status.build_router(),
                       claim.build_router(), seats.build_router())
    dp.include_router(fallback.build_router())  # last: whatever nobody else handled
    return dp
