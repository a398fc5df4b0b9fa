"""The rows of ``fsm_states``: the bot's dialogues half-way when no Redis is configured.

``bot.telegram.fsm_storage.DatabaseStorage`` (aiogram's FSM storage) keeps them in memory and writes every
change through to these rows; here is only the SQL. A key is aiogram's ``StorageKey`` as a tuple
``(bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)`` with no thread as 0
and no business connection as ''."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import Database
from storage.models import FsmState

Key = tuple[int, int, int, int, str, str]
_KEY_COLUMNS = (FsmState.bot_id, FsmState.chat_id, FsmState.user_id, FsmState.thread_id,
                FsmState.business_connection_id, FsmState.destiny)


def _is(key: Key) -> Any:
    return and_(*(column == value for column, value in zip(_KEY_COLUMNS, key, strict=True)))


async def load(db: Database, older_than: dt.datetime) -> list[tuple[Key, str | None, dict[str, Any], dt.datetime]]:
    """Deletes the rows last changed before ``older_than`` and returns the others."""
    async with db.write() as session:
        await session.execute(delete(FsmState).where(FsmState.updated_at < older_than))
        rows = (await session.execute(select(*_KEY_COLUMNS, FsmState.state, FsmState.data,
                                             FsmState.updated_at))).all()
    return [(tuple(r[:6]), r.state, dict(r.data or {}), r.updated_at) for r in rows]


async def save(db: Database, key: Key, state: str | None, data: dict[str, Any], at: dt.datetime) -> None:
    """Insert or replace the row of ``key``."""
    values = {column.key: value for column, value in zip(_KEY_COLUMNS, key, strict=True)}
    values.update(state=state, data=data, updated_at=at)
    insert = pg_insert if db.is_postgres else sqlite_insert
    statement = insert(FsmState).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[c.key for c in _KEY_COLUMNS],
        set_={"state": statement.excluded.state, "data": statement.excluded.data,
              "updated_at": statement.excluded.updated_at})
    async with db.write() as session:
        await session.execute(statement)


async def remove(db: Database, key: Key) -> None:
    async with db.write() as session:
        await session.execute(delete(FsmState).where(_is(key)))


async def remove_older(db: Database, older_than: dt.datetime) -> None:
    """Deletes the rows last changed before ``older_than`` (dialogues left half-way)."""
    async with db.write() as session:
        await session.execute(delete(FsmState).where(FsmState.updated_at < older_than))
