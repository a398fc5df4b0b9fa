"""The database under the bot's load and faults:

* a write cancelled half-way (a shutdown cancelling a sender round, a timeout) changes nothing and
  leaves the database free for the next writer;
* a burst of concurrent reads (64 updates in flight) does not make the pools open and close
  connections all the time;
* a hot read (``storage.db.Hot``, the reads of every update, run on the driver) gives the rows
  SQLAlchemy gives, is one read-only snapshot on SQLite, and keeps its connections few.

Found in CI: ``kezek run`` was SIGKILLed at its shutdown because the sender round it cancelled had
been inside a write; on SQLite the dropped connection kept its transaction (a "zombie" close) and
with it the write lock, so the shutdown's own write waited out the busy timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sqlite3

import pytest
from sqlalchemy import bindparam, event, func, select, text

import storage.db
from storage.db import POOLS, Database
from storage.hot import Hot
from storage.models import Chat, UTCDateTime

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
            async with fresh.read(small=True) as session:
                assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            await asyncio.sleep(0.001 * (i % 3))  # the rest of the update: other I/O

    await asyncio.gather(*[parent(i) for i in range(64)])
    size, overflow = POOLS["inline" if fresh.is_sqlite else "postgresql"]
    # (while the first burst opens them, the suspended opens let more checkouts in: twice the
    # pool's bound is the start-up; the work itself adds none)
    assert len(opened) <= 2 * (size + overflow)


# --- hot reads (storage.db.Hot: SQLAlchemy-compiled SELECTs run on the driver) ---------------------

_CHATS_SINCE = Hot(
    select(Chat.id, Chat.language, Chat.blocked_at, Chat.created_at,
           (Chat.id > 2).label("late"), func.count().over().label("total"))
    .where(Chat.created_at >= bindparam("since", type_=UTCDateTime()), func.coalesce(Chat.language, "") != "xx")
    .order_by(Chat.id))


async def _seed_chats(db: Database) -> None:
    async with db.write() as session:
        session.add_all([
            Chat(id=1, language="ru", created_at=NOW, updated_at=NOW),
            Chat(id=2, language="kk", created_at=NOW + dt.timedelta(hours=1), updated_at=NOW,
                 blocked_at=NOW + dt.timedelta(minutes=5, microseconds=7)),
            Chat(id=3, language=None, created_at=NOW + dt.timedelta(days=1), updated_at=NOW),
        ])


async def test_a_hot_read_gives_the_rows_sqlalchemy_gives(fresh: Database) -> None:
    """The same statement, its parameters and its types through the driver: aware UTC datetimes
    (and a datetime parameter in Almaty time), booleans, NULLs, a literal in the statement."""
    await _seed_chats(fresh)
    since = (NOW + dt.timedelta(minutes=30)).astimezone(dt.timezone(dt.timedelta(hours=5)))
    async with fresh.read() as session:
        expected = [tuple(r) for r in (await session.execute(_CHATS_SINCE.statement, {"since": since})).all()]
    async with fresh.hot() as reader:
        rows = await reader.all(_CHATS_SINCE, {"since": since})
        first = await reader.first(_CHATS_SINCE, {"since": NOW + dt.timedelta(days=2)})
    assert [tuple(r) for r in rows] == expected
    assert [(r.id, r.language, r.late, r.total) for r in rows] == [(2, "kk", False, 2), (3, None, True, 2)]
    assert rows[0].blocked_at == NOW + dt.timedelta(minutes=5, microseconds=7)
    assert rows[0].blocked_at.tzinfo is not None and rows[1].created_at.utcoffset() == dt.timedelta(0)
    assert first is None


async def test_a_hot_statements_constants_are_literals_and_a_quote_in_one_is_escaped(fresh: Database) -> None:
    """The statement's own values go into the SQL (PostgreSQL plans hot reads once, generically:
    a constant sent as a parameter would hide a partial index from that plan); the caller's
    values stay parameters. A quote in a constant cannot break out of its literal."""
    await _seed_chats(fresh)
    async with fresh.write() as session:
        session.add(Chat(id=4, language="o'", created_at=NOW, updated_at=NOW))
    hot = Hot(select(Chat.id).where(func.coalesce(Chat.language, "x") != "o'", Chat.id != bindparam("skip"),
                                    Chat.created_at < NOW + dt.timedelta(hours=2)).order_by(Chat.id))
    plan = hot.plan(fresh.small_read_engine.dialect)
    assert [name for name, _value, _process in plan.binds] == ["skip"]
    async with fresh.hot() as reader:
        assert [r.id for r in await reader.all(hot, {"skip": 1})] == [2]


async def test_a_hot_statement_refuses_an_expanding_in(fresh: Database) -> None:
    hot = Hot(select(Chat.id).where(Chat.id.in_([1, 2])))
    async with fresh.hot() as reader:
        with pytest.raises(ValueError, match="expanding IN"):
            await reader.all(hot)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_hot_read_is_one_snapshot_and_cannot_write(fresh: Database) -> None:
    await _seed_chats(fresh)
    count = Hot(select(func.count()).select_from(Chat))
    async with fresh.hot() as reader:
        [(before,)] = await reader.all(count)
        await _add_chat(fresh, 4)  # committed by a writer meanwhile
        [(inside,)] = await reader.all(count)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._sqlite.execute("DELETE FROM chats")  # type: ignore[union-attr]
    async with fresh.hot() as reader:
        [(after,)] = await reader.all(count)
    assert (before, inside, after) == (3, 3, 4)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_hot_connections_are_kept_few_and_a_cancelled_read_leaves_no_transaction(
        fresh: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[sqlite3.Connection] = []
    connect = fresh._hot_connect

    def counting() -> sqlite3.Connection:
        opened.append(connect())
        return opened[-1]

    monkeypatch.setattr(fresh, "_hot_connect", counting)
    one = Hot(select(func.count()).select_from(Chat))
    for _ in range(50):  # one after another: one connection
        async with fresh.hot() as reader:
            await reader.all(one)
    assert len(opened) == 1

    async def waits_inside() -> None:
        async with fresh.hot() as reader:
            await reader.all(one)
            await asyncio.sleep(0.01)  # a read that awaits: the others need connections of their own

    await asyncio.gather(*[waits_inside() for _ in range(10)])
    assert len(opened) == 10 and len(fresh._hot_idle) == storage.db.HOT_SQLITE_KEPT

    stuck = asyncio.create_task(waits_inside())
    await asyncio.sleep(0.001)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert all(not c.in_transaction for c in fresh._hot_idle)
    await _add_chat(fresh, 9)  # and the database is free
    await fresh.dispose()
    assert fresh._hot_idle == []


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_a_hot_read_survives_a_dropped_postgresql_connection(fresh: Database) -> None:
    """The server drops the connections a process keeps for hot reads (a restart, an idle timeout):
    the next read goes through on a new connection instead of failing the parent's update."""
    await _seed_chats(fresh)
    count = Hot(select(func.count()).select_from(Chat))
    for _ in range(2):
        async with fresh.hot() as reader:
            assert await reader.all(count) == [(3,)]
        kept = fresh._hot_pg_idle
        assert len(kept) == 1
        async with fresh.write() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": kept[0].get_server_pid()})
    await asyncio.sleep(0.2)
    async with fresh.hot() as reader:  # the dropped one is not taken
        assert await reader.all(count) == [(3,)]
        # ... and one dropped in the middle of a read: its next statement goes on a new one.
        async with fresh.write() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": reader._pg.get_server_pid()})
        await asyncio.sleep(0.2)
        assert reader._pg.is_closed()
        assert await reader.first(count) == (3,)
    assert len(fresh._hot_pg_idle) == 1 and not fresh._hot_pg_idle[0].is_closed()


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_hot_reads_on_postgresql_share_a_bounded_set_of_connections(fresh: Database) -> None:
    """64 reads in flight share HOT_PG_SIZE connections (no login per read beyond them), and a
    read that fails or is cancelled gives its place back."""
    await _seed_chats(fresh)
    count = Hot(select(func.count()).select_from(Chat))
    servers: set[int] = set()

    async def parent() -> None:
        for _ in range(5):
            async with fresh.hot() as reader:
                assert await reader.all(count) == [(3,)]
                servers.add(reader._pg.get_server_pid())
                await asyncio.sleep(0.001)

    await asyncio.gather(*[parent() for _ in range(64)])
    assert len(servers) <= storage.db.HOT_PG_SIZE
    for _ in range(storage.db.HOT_PG_SIZE + 2):
        with pytest.raises(ZeroDivisionError):
            async with fresh.hot() as reader:
                await reader.all(count)
                1 / 0  # noqa: B018 - a failure inside the read
    async with fresh.hot() as reader:  # (no slot was lost)
        assert await reader.first(count) == (3,)
