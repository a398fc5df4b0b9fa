"""Composition of the Telegram front: the Dispatcher with its middlewares and routers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiogram import BaseMiddleware, Dispatcher, F
from aiogram.enums import ChatType
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder

from bot.telegram.fsm_storage import DatabaseStorage
from bot.telegram.gate import ChatGate
from bot.telegram.middlewares import ContextMiddleware, ErrorBoundaryMiddleware, UpdateMetricsMiddleware
from bot.telegram.throttling import ThrottleMiddleware
from handlers import claim, documents, fallback, link, seats, settings, staff, start, status, unlink
from handlers import help as help_handlers
from handlers.filters import Magic
from services.kezek import Kezek

if TYPE_CHECKING:
    from bot.config import Settings

# A dialogue left half-way is forgotten after a day (its data holds an application number and an
# IIN; SECURITY.md: kept only until the dialogue ends): the Redis keys' time to live, and the
# database's rows without Redis (bot.telegram.fsm_storage).
FSM_TTL_SECONDS = DatabaseStorage.TTL_SECONDS
CHAT_LOCK_SECONDS = 10  # the Redis lock of a chat being handled (see make_storage)


def make_storage(settings: Settings, *,
                 prefix: str = "kezek") -> tuple[BaseStorage | None, BaseEventIsolation | None]:
    """FSM storage and event isolation for the settings.

    No ``redis_url``: (None, None), the default of ``build_dispatcher``: the dialogues in the
    bot's own database (``bot.telegram.fsm_storage.DatabaseStorage``: one process; a restart keeps them), no
    isolation. With Redis: RedisStorage with keys ``<prefix>:<bot id>:<chat>:<user>:state|data``
    and RedisEventIsolation on the same client, so that two instances never handle updates of one
    chat at the same time (ARCHITECTURE.md, library traps)."""
    if not settings.redis_url:
        return None, None
    from aiogram.fsm.storage.redis import RedisStorage

    from bot.telegram.degraded import FallbackIsolation, FallbackStorage, Outage

    storage = RedisStorage.from_url(settings.redis_url,
                                    connection_kwargs={"socket_connect_timeout": 2, "socket_timeout": 2},
                                    key_builder=DefaultKeyBuilder(prefix=prefix, with_bot_id=True),
                                    state_ttl=FSM_TTL_SECONDS, data_ttl=FSM_TTL_SECONDS)
    # Redis down: the dialogues and locks fall back to this process's memory (bot/telegram/degraded.py).
    outage = Outage()
    # A chat's lock outlives a killed instance by its timeout: aiogram's 60 s held that chat's next
    # updates (Telegram's redeliveries included) for a minute; a handler takes well under 10 s.
    isolation = storage.create_isolation(lock_kwargs={"timeout": CHAT_LOCK_SECONDS})
    return FallbackStorage(storage, outage), FallbackIsolation(isolation, outage)


def build_dispatcher(kezek: Kezek, storage: BaseStorage | None = None,
                     events_isolation: BaseEventIsolation | None = None,
                     throttle: ThrottleMiddleware | None = None,
                     extra: Sequence[BaseMiddleware] = ()) -> Dispatcher:
    """A Dispatcher whose handlers get ``kz`` (the service facade) and ``lang`` ('ru' | 'kk').

    ``storage``: FSM storage (when None: the dialogues in kezek's database, ``DatabaseStorage``);
    ``events_isolation``: aiogram's event isolation (none when None); ``throttle``: the per-chat
    limit (none when None; ``bot.telegram.runner`` builds one from the settings); ``extra``: outer
    update middlewares after the context (they see ``kz`` and ``lang``), e.g. the sandbox's
    ``bot.sandbox.hint.WindowHintMiddleware``. The Dispatcher closes the storage and the throttle on
    shutdown."""
    # With Redis, bot.telegram.gate.ChatGate takes the place of aiogram's FSM middleware (the lock, the
    # state and the throttle's count in one round trip).
    gate = ChatGate.over(storage, events_isolation)
    dp = Dispatcher(storage=storage if storage is not None else DatabaseStorage(kezek.db),
                    events_isolation=events_isolation,
                    disable_fsm=gate is not None)
    if gate is not None:
        dp.fsm = gate  # (the Dispatcher's shutdown closes the same storage and isolation)
        dp.update.outer_middleware(gate)
        gate.throttle = throttle
    context = ContextMiddleware(kezek)
    # Outer middlewares run in registration order: the metrics time everything, the error
    # boundary wraps the context lookup.
    dp.update.outer_middleware(UpdateMetricsMiddleware())
    dp.update.outer_middleware(ErrorBoundaryMiddleware())
    if throttle is not None:
        # Before the context: a flood is dropped without a database read (the language of the one
        # answer is looked up the same way, lazily).
        if throttle.language is None:
            throttle.language = context.language_of
        dp.update.outer_middleware(throttle)
        dp.shutdown.register(throttle.close)
    dp.update.outer_middleware(context)
    for middleware in extra:
        dp.update.outer_middleware(middleware)
    # Kezek talks to parents one to one; messages in groups are left alone.
    dp.message.filter(Magic(F.chat.type == ChatType.PRIVATE))
    # /status outside a dialogue first (handlers.status.build_first_router: the same answer,
    # found sooner). Routers with a dialogue (FSM) catch-all come before the plain command routers.
    dp.include_router(status.build_first_router())
    dp.include_routers(start.build_router(), help_handlers.build_router(), link.build_router(),
                       settings.build_router(), unlink.build_router(), status.build_router(),
                       claim.build_router(), seats.build_router(), documents.build_router(),
                       staff.build_router())
    dp.include_router(fallback.build_router())  # last: whatever nobody else handled
    return dp
