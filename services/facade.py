"""The base of the service facade: units of work (one transaction each) and read-only looks.

``services.kezek.Kezek`` combines this base with one mixin per front-end flow, each kept beside
its services, so that a flow's facade methods live next to the code they call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import select

from services.clock import Clock
from services.context import Ctx
from services.errors import NotLinked
from storage.db import Database
from storage.models import Application, ChatLink

T = TypeVar("T")


class FacadeBase:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @asynccontextmanager
    async def unit(self, actor: str = "system", *, with_calendar: bool = True) -> AsyncIterator[Ctx]:
        """One transaction: the change, its audit entries and its outbox notices, or nothing."""
        async with self.db.write() as session:
            ctx = await Ctx.open(session, self.clock.now(), actor, with_calendar=with_calendar)
            yield ctx
            await ctx.flush()

    async def unit_keeping(self, step: Callable[[Ctx], Awaitable[T]], keep: tuple[type[Exception], ...],
                           actor: str = "telegram") -> T:
        """One unit of work whose failures of the ``keep`` kinds are committed before they reach the
        caller: what they wrote (a counted failed attempt, the tries of a code) must stay, or a
        lock-out would never come. Any other error rolls back as usual."""
        failure: Exception | None = None
        async with self.unit(actor, with_calendar=False) as ctx:
            try:
                return await step(ctx)
            except keep as exc:
                failure = exc
        assert failure is not None
        raise failure

    @asynccontextmanager
    async def reading(self, *, with_calendar: bool = True, small: bool = False) -> AsyncIterator[Ctx]:
        """A read-only unit; ``small=True`` for a chat's own screen (a few indexed rows: on SQLite
        it runs in the event loop's thread, see ``storage.db``)."""
        async with self.db.read(small=small) as session:
            yield await Ctx.open(session, self.clock.now(), with_calendar=with_calendar)


def is_row_id(value: object) -> bool:
    """A value that can be a row id at all (button data may carry any integer)."""
    return isinstance(value, int) and 0 < value < 2**63


async def linked_application(ctx: Ctx, chat_id: int, application_id: int) -> Application:
    """The application ``application_id`` if this chat has linked it, else ``NotLinked``.

    Every button that names an application goes through here: callback data come from the
    client and may be forged, replayed from another chat or stale (unlinked since)."""
    if not is_row_id(application_id):
        raise NotLinked()
    app = (await ctx.session.execute(
        select(Application).join(ChatLink, ChatLink.application_id == Application.id).where(
            ChatLink.chat_id == chat_id, Application.id == application_id))).scalar_one_or_none()
    if app is None:
        raise NotLinked()
    return app
