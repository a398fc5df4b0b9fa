"""The database under the bot's load and faults:

* a write cancelled half-way (a shutdown cancelling a sender round, a timeout) changes nothing and
  leaves the database free for the next writer;
* a burst of concurrent reads (64 updates in flight) does not make the pools open and close
  connections all the time.

Found in CI: ``kezek run`` was SIGKILLed at its shutdown because the sender round it cancelled had
been inside a write; on SQLite the dropped connection kept its transaction (a "zombie" close) and
with it the write lock, so the shutdown's own write waited out the busy timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest
from sqlalchemy import event, func, select, text

import storage.db
from storage.db import POOLS, Database
from storage.models import Chat

NOW = dt.datetime(2026, 9, 7, 5, 0, tzinfo=dt.UTC)
SLOW = {
    # ~1 s of work inside the statement on either backend: the cancellation lands while it runs.
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
              "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(1)",
}


@pytest.fixture
async def fresh(db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Database:
    # A held lock shows as "database is locked" after 1 s instead of the 30 s default.
    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    database = Database(db_url)
    yield database
    await database.dispose()


async def _chats(db: Database) -> set[int]:
    async with db.read() as session:
        return set((await session.execute(select(Chat.id))).scalars())


async def _add_chat(db: Database, chat_id: int) -> None:
    async with db.write() as session:
        session.add(Chat(id=chat_id, language="kk", created_at=NOW, updated_at=NOW))


async def test_a_write_cancelled_inside_a_statement_changes_nothing_and_holds_no_lock(fresh: Database) -> None:
    inside = asyncio.Event()

    async def interrupted() -> None:
        async with fresh.write() as session:
            session.add(Chat(id=1, language="ru", created_at=NOW, updated_at=NOW))
            await session.flush()  # the row is written inside the transaction, and the lock taken
            inside.set()
            await session.execute(text(SLOW["sqlite" if fresh.is_sqlite else "postgresql"]))

    task = asyncio.create_task(interrupted())
    await inside.wait()
    await asyncio.sleep(0.1)  # well inside the slow statement
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await _add_chat(fresh, 2)  # raised "database is locked" before the fix
    assert await _chats(fresh) == {2}


async def test_writes_cancelled_at_random_moments_never_block_the_next_writer(fresh: Database) -> None:
    rng = random.Random(7)
    written: set[int] = set()

    async def busy(base: int) -> None:
        for n in range(0, 2000, 2):  # two rows a transaction: both or neither
            async with fresh.write() as session:
                session.add(Chat(id=base + n, language="ru", created_at=NOW, updated_at=NOW))
                await session.flush()
                await session.execute(select(func.count()).select_from(Chat))
                session.add(Chat(id=base + n + 1, language="ru", created_at=NOW, updated_at=NOW))
            written.update((base + n, base + n + 1))

    for round_ in range(40):
        base = 10_000 * (round_ + 1)
        task = asyncio.create_task(busy(base))
        await asyncio.sleep(rng.random() * 0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _add_chat(fresh, round_ + 1)  # the next writer gets through at once
        written.add(round_ + 1)
    # What committed is there (a cancellation that came after the commit may have kept its
    # transaction's pair from ``written``); an interrupted transaction left no half of itself.
    chats = await _chats(fresh)
    assert written <= chats
    assert all(c + (1 if c % 2 == 0 else -1) in chats for c in chats if c >= 10_000)


async def test_a_burst_of_concurrent_reads_keeps_its_connections(fresh: Database) -> None:
    """64 updates in flight, 50 chat-sized reads each: the connections opened are those of the
    first burst, not one every few reads (the default 5 + 10 pool opened 219 for 3,200 reads: a
    thread, the PRAGMAs and a cold page cache each time on SQLite, a login on PostgreSQL)."""
    engine = fresh.small_read_engine
    opened = []
    event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))

    async def parent(i: int) -> None:
        for _ in range(50):
            async with fresh.small_read() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            await asyncio.sleep(0.001 * (i % 3))  # the rest of the update: other I/O

    await asyncio.gather(*[parent(i) for i in range(64)])
    size, overflow = POOLS["inline" if fresh.is_sqlite else "postgresql"]
    # (while the first burst opens them, the suspended opens let more checkouts in: twice the
    # pool's bound is the start-up; the work itself adds none)
    assert len(opened) <= 2 * (size + overflow)
