"""The dialogues (aiogram's FSM) in the bot's own database: the default without Redis.

With aiogram's ``MemoryStorage`` a restart (a deploy, a crash) forgot every dialogue half-way: a
parent who had typed the application number and then the IIN got «I did not understand this
message». ``DatabaseStorage`` keeps them in the table ``fsm_states`` (``storage.fsm_states``), in
the same database as the applications.

The default setup is one bot process, so the storage owns its rows: it reads them all once (at its
first use) and then answers from memory, writing every change through to the database before it
returns. Reading a chat's state, which aiogram does for every update (a /status too), is a dict
lookup, as with ``MemoryStorage``; only a dialogue's steps write. Several instances sharing one
token keep their dialogues in Redis instead (``bot.telegram.app.make_storage``).

* The end of a dialogue (no state, no data: aiogram's ``state.clear()``) deletes its row, and
  clearing a chat that has none costs nothing.
* A dialogue left untouched for a day (``TTL_SECONDS``, as the Redis keys' time to live) is
  forgotten: ignored and deleted when read, and the expired rows are deleted at start-up and at
  most every ``SWEEP_SECONDS`` when a dialogue changes.
* The data may hold an IIN typed half-way: it is never logged (nor is any value of it), and a
  value that JSON cannot hold is refused with ``TypeError`` before anything is written.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from storage import fsm_states
from storage.db import Database


@dataclass(slots=True)
class _Dialogue:
    state: str | None
    data: dict[str, Any]
    at: float  # when it last changed (the clock's seconds)


def _key(key: StorageKey) -> fsm_states.Key:
    return (key.bot_id, key.chat_id, key.user_id, key.thread_id or 0, key.business_connection_id or "",
            key.destiny)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class DatabaseStorage(BaseStorage):
    """aiogram's FSM storage on ``db`` (table ``fsm_states``) with a write-through copy in memory;
    ``clock``: wall-clock seconds (the time to live is real time, like Redis')."""

    TTL_SECONDS = 24 * 60 * 60
    SWEEP_SECONDS = 10 * 60

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db, self.clock = db, clock
        self._dialogues: dict[fsm_states.Key, _Dialogue] | None = None  # None: not read yet
        self._loading = asyncio.Lock()
        self._writing = asyncio.Lock()  # one change at a time: memory and rows change in one order
        self._next_sweep = 0.0

    async def _all(self) -> dict[fsm_states.Key, _Dialogue]:
        async with self._loading:
            if self._dialogues is None:
                now = self.clock()
                rows = await fsm_states.load(self.db, _utc(now - self.TTL_SECONDS))
                self._dialogues = {key: _Dialogue(state, data, at.timestamp()) for key, state, data, at in rows}
                self._next_sweep = now + self.SWEEP_SECONDS
            return self._dialogues

    async def _get(self, key: StorageKey) -> _Dialogue | None:
        dialogues = self._dialogues
        if dialogues is None:
            dialogues = await self._all()
        found = dialogues.get(_key(key))
        if found is not None and found.at + self.TTL_SECONDS <= self.clock():
            await self._change(key, state=None, data={})  # expired: forgotten and deleted
            return None
        return found

    async def get_state(self, key: StorageKey) -> str | None:
        found = await self._get(key)
        return found.state if found is not None else None

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        found = await self._get(key)
        return copy.deepcopy(found.data) if found is not None else {}

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._change(key, state=state.state if isinstance(state, State) else state)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DataNotDictLikeError(f"Data must be a dict or dict-like object, got {type(data).__name__}")
        # What is kept is what a restart reads back (JSON); a value JSON cannot hold is refused
        # before anything is written (the error names no value).
        try:
            kept = json.loads(json.dumps(data))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"a dialogue's data must be JSON: {type(exc).__name__}") from None
        await self._change(key, data=kept)

    async def _change(self, key: StorageKey, **change: Any) -> None:
        dialogues = self._dialogues
        if dialogues is None:
            dialogues = await self._all()
        k = _key(key)
        async with self._writing:
            now = self.clock()
            current = dialogues.get(k)
            if current is not None and current.at + self.TTL_SECONDS <= now:
                current = None  # expired: what is changed starts from nothing
            state = change.get("state", current.state if current else None)
            data = change.get("data", current.data if current else {})
            if state is None and not data:
                if k in dialogues:
                    await fsm_states.remove(self.db, k)
                    del dialogues[k]
            else:
                await fsm_states.save(self.db, k, state, data, _utc(now))
                dialogues[k] = _Dialogue(state, data, now)
            if now >= self._next_sweep:
                await self._sweep(dialogues, now)

    async def _sweep(self, dialogues: dict[fsm_states.Key, _Dialogue], now: float) -> None:
        self._next_sweep = now + self.SWEEP_SECONDS
        cutoff = now - self.TTL_SECONDS
        await fsm_states.remove_older(self.db, _utc(cutoff))
        for k in [k for k, d in dialogues.items() if d.at <= cutoff]:
            del dialogues[k]

    async def close(self) -> None:
        """Forgets the copy in memory (the database is the caller's; a later use reads it again)."""
        self._dialogues = None
