"""Engine and session factory.

Two kinds of unit of work:

* ``write()`` — one transaction that commits or rolls back whole. On SQLite it starts with
  ``BEGIN IMMEDIATE`` so that two writers queue on the database lock (busy timeout) instead of
  failing with a stale snapshot; on PostgreSQL it is a plain READ COMMITTED transaction and the
  services use conditional updates and row locks.
* ``read()`` — a read-only transaction (``BEGIN`` deferred on SQLite: readers never block in WAL).
  ``read(small=True)``: a read of a few indexed rows (one chat's screen). On SQLite it runs in the
  event loop's own thread: aiosqlite hands every call (cursor, execute, fetch, close) to its
  connection's thread and back, four thread hops per statement, which cost more CPU than the
  statement itself (a /status card: ~24 hops). A WAL reader takes no lock a writer holds, so it
  does not wait; anything that could scan many rows or write uses the threaded engines. On
  PostgreSQL a small read runs without a transaction of its own (autocommit: no BEGIN and
  ROLLBACK round trips; each statement reads a committed snapshot).
* ``hot()`` — the reads every update makes (the chat's language, the status cards): ``Hot``
  statements run straight on the driver's connection (``storage.hot``, which says why). On SQLite
  a few plain ``sqlite3`` connections (read-only, ``query_only``) serve them in the loop's thread,
  each read one deferred transaction (one snapshot); on PostgreSQL a few asyncpg connections of
  their own (autocommit; asyncpg prepares and caches the statements). Not the engine's pool: its
  checkout pinged the server first (``pool_pre_ping``), a round trip that cost more CPU than the
  read. Instead a read whose connection turns out dead (a server restart) is sent again once on a
  new connection.

The measurements behind the pool sizes and the hot reads are in BENCHMARKS.md (the sections named
beside each constant), not here: figures in code go stale."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from storage.hot import HotReader
from storage.private_files import private_sqlite

SQLITE_BUSY_TIMEOUT_MS = 30_000
_writing: ContextVar[bool] = ContextVar("kezek_writing", default=False)  # inside Database.write
SQLITE_CACHE_KIB = 64 * 1024  # page cache per connection (SQLite's default is 2 MiB)
SQLITE_MMAP_BYTES = 1 << 30  # read the file through the OS page cache without copies
# Connections each pool keeps open (pool_size) and may open beyond that for a burst (max_overflow).
# An overflow connection is closed as soon as it goes back, so a pool smaller than the usual
# concurrency opens and closes connections all the time, each a new thread, six PRAGMAs and a cold
# page cache on SQLite, a login on PostgreSQL (the default 5 + 10 did under the load benchmark:
# BENCHMARKS.md, "2026-12-01: what changed", "Connection churn"). The in-loop SQLite reads hold a
# connection without yielding (their statements run in the loop's thread), so a few connections
# serve any number of updates and a burst waits its turn instead of opening more.
POOLS = {"inline": (8, 0), "sqlite": (8, 8), "postgresql": (16, 8)}
HOT_SQLITE_KEPT = 4  # idle sqlite3 connections kept for hot reads (one is enough unless a read awaits)
# asyncpg connections for hot reads (each read awaits the server): at most this many per process,
# kept open; a read beyond them waits for one to come back (opening one per read beyond a smaller
# pool cost more than the read: a login each). These reads take a fraction of a millisecond of
# server CPU: more of them at once only makes the server switch between its backends. Fewer gave
# more /status a second and a steadier p95 than 10 did (the A/B: BENCHMARKS.md, "2026-12-02:
# PostgreSQL + Redis from 0.30 to about half the echo").
HOT_PG_SIZE = 4


def normalise_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, *, query_only: bool = False) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    if query_only:
        cur.execute("PRAGMA query_only=ON")
    cur.close()


class _RollbackOnClose(sqlite3.Connection):
    """A connection that ends its transaction before it closes.

    A task cancelled inside a write (a shutdown, a timeout) makes SQLAlchemy drop the connection
    and close it; but the cursor of the statement that was interrupted is still referenced (by the
    exception's frames), and sqlite3 then closes the connection as a "zombie" that keeps its
    transaction, and with it the database's write lock, until that cursor is collected: every
    other writer waited out the 30 s busy timeout (``kezek run`` hung at its shutdown flush)."""

    def close(self) -> None:
        try:
            if self.in_transaction:
                self.rollback()  # (SQLite aborts the pending statements; the lock goes now)
        finally:
            super().close()


class _InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run in the caller's (the event loop's) thread;
    connecting and closing still go through aiosqlite's thread, which stays idle otherwise."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def _inline_creator(url: str) -> Any:
    path = url.split(":///", 1)[1]

    def create() -> _InlineConnection:
        # (created in aiosqlite's thread, used in the loop's: hence check_same_thread=False)
        conn = _InlineConnection(lambda: sqlite3.connect(path, check_same_thread=False, factory=_RollbackOnClose), 64)
        conn._thread.daemon = True
        return conn

    return create


def _make_sqlite_engine(url: str, immediate: bool, *, inline: bool = False, **kw: Any) -> AsyncEngine:
    # Sessions always end their transaction (commit, or rollback on error) before the
    # connection goes back to the pool, so the pool's extra ROLLBACK is a wasted round trip
    # through aiosqlite's thread on every unit of work.
    if inline:
        kw["async_creator"] = _inline_creator(url)
    else:
        kw["connect_args"] = {"factory": _RollbackOnClose}
    size, overflow = POOLS["inline" if inline else "sqlite"]
    engine = create_async_engine(url, pool_reset_on_return=None, pool_size=size, max_overflow=overflow,
                                 hide_parameters=True, **kw)  # (bound values: IINs, phones; bot/logsafe.py)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own transaction handling is off).
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection)

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if inline:
            # Straight on sqlite3 (a small read runs in the loop's thread): through
            # exec_driver_sql the BEGIN cost a whole SQLAlchemy statement execution, a third of
            # a small read.
            conn.connection.dbapi_connection.driver_connection._conn.execute(begin)
        else:
            conn.exec_driver_sql(begin)

    return engine

class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        if self.is_sqlite:
            private_sqlite(self.url)  # 0600 before SQLite makes it (and its -wal/-shm with its mode)
            self.engine = _make_sqlite_engine(self.url, immediate=True, echo=echo)
            self.read_engine = _make_sqlite_engine(self.url, immediate=False, echo=echo)
            self.small_read_engine = _make_sqlite_engine(self.url, immediate=False, inline=True, echo=echo)
        else:
            size, overflow = POOLS["postgresql"]
            self.engine = create_async_engine(self.url, echo=echo, pool_pre_ping=True, pool_size=size,
                                              max_overflow=overflow, hide_parameters=True)
            self.read_engine = self.engine
            # A small read needs no transaction of its own: each statement sees a committed
            # snapshot, and BEGIN and ROLLBACK were two of a /status's round trips per read.
            self.small_read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._small_read_sessions = async_sessionmaker(self.small_read_engine, expire_on_commit=False)
        self._hot_idle: list[sqlite3.Connection] = []
        self._hot_pg_idle: list[Any] = []  # asyncpg connections
        self._hot_pg_slots = asyncio.Semaphore(HOT_PG_SIZE)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction. On SQLite a process's writers queue on an asyncio lock first
        (in order) and only then on the database's: SQLite's busy handler retries with sleeps,
        so under load some writers lost every race until the 30 s busy timeout ("database is
        locked") while others got through; now only the instances compete for the file lock."""
        if self._write_lock is None or _writing.get():
            async with self._write_sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            token = _writing.set(True)
            try:
                async with self._write_sessions() as session, session.begin():
                    yield session
            finally:
                _writing.reset(token)

    @asynccontextmanager
    async def read(self, *, small: bool = False) -> AsyncIterator[AsyncSession]:
        """A read-only transaction; ``small``: a few indexed rows, in the loop's thread on SQLite."""
        sessions = self._small_read_sessions if small else self._read_sessions
        async with sessions() as session, session.begin():
            yield session

    def _hot_connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.url.split(":///", 1)[1], check_same_thread=False, isolation_level=None,
                               factory=_RollbackOnClose)
        _sqlite_pragmas(conn, query_only=True)
        return conn

    @asynccontextmanager
    async def hot(self) -> AsyncIterator[HotReader]:
        """A read of ``Hot`` statements on the driver (see the module's docstring): on SQLite in
        the loop's thread, in one deferred transaction; on PostgreSQL in autocommit. Only for
        reads of a few indexed rows: a statement here blocks the event loop while it runs."""
        dialect = self.small_read_engine.dialect
        if not self.is_sqlite:
            async with self._hot_pg(dialect) as reader:
                yield reader
            return
        conn = self._hot_idle.pop() if self._hot_idle else self._hot_connect()
        try:
            conn.execute("BEGIN")
            yield HotReader(dialect, sqlite=conn)
        except BaseException:
            conn.close()
            raise
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            conn.close()
            raise
        if len(self._hot_idle) < HOT_SQLITE_KEPT:
            self._hot_idle.append(conn)
        else:
            conn.close()

    async def _hot_pg_connect(self) -> Any:
        import asyncpg

        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        # A generic plan for every hot read, from its first execution. With the default
        # (``auto``) PostgreSQL planned the status cards' statement anew on every execution: its
        # estimate of the generic plan stayed above the custom ones', and planning that join of
        # eight tables and five subqueries cost more than executing it (BENCHMARKS.md, "2026-12-02,
        # second session"). Hot statements are index lookups whose constants are literals
        # (``storage.hot.Hot``), so one plan serves every value.
        return await asyncpg.connect(dsn, timeout=10, server_settings={"plan_cache_mode": "force_generic_plan"})

    @asynccontextmanager
    async def _hot_pg(self, dialect: Dialect) -> AsyncIterator[HotReader]:
        idle = self._hot_pg_idle
        async with self._hot_pg_slots:
            conn = None
            while idle and conn is None:
                conn = idle.pop()
                if conn.is_closed():
                    conn = None
            reader = HotReader(dialect, pg=conn or await self._hot_pg_connect(), reconnect=self._hot_pg_connect)
            try:
                yield reader
            except BaseException:
                reader._pg.terminate()  # (cancelled mid-statement, say: its state is unknown)
                raise
            if reader._pg.is_closed() or reader._pg.is_in_transaction():
                reader._pg.terminate()
            else:
                idle.append(reader._pg)

    async def dispose(self) -> None:
        while self._hot_idle:
            self._hot_idle.pop().close()
        while self._hot_pg_idle:
            conn = self._hot_pg_idle.pop()
            try:
                await conn.close(timeout=5)
            except Exception:  # noqa: BLE001 - the server went away first
                conn.terminate()
        for engine in {self.engine, self.read_engine, self.small_read_engine}:
            await engine.dispose()  # (an engine with other execution options shares its pool)
