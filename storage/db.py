"""Engine and session factory.

Two kinds of unit of work:

* ``write()`` — one transaction that commits or rolls back whole. On SQLite it starts with
  ``BEGIN IMMEDIATE`` so that two writers queue on the database lock (busy timeout) instead of
  failing with a stale snapshot; on PostgreSQL it is a plain READ COMMITTED transaction and the
  services use conditional updates and row locks.
* ``read()`` — a read-only transaction (``BEGIN`` deferred on SQLite: readers never block in WAL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 64 * 1024  # page cache per connection (SQLite's default is 2 MiB)
SQLITE_MMAP_BYTES = 1 << 30  # read the file through the OS page cache without copies


def normalise_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def _make_sqlite_engine(url: str, immediate: bool, **kw: Any) -> AsyncEngine:
    # Sessions always end their transaction (commit, or rollback on error) before the
    # connection goes back to the pool, so the pool's extra ROLLBACK is a wasted round trip
    # through aiosqlite's thread on every unit of work.
    engine = create_async_engine(url, pool_reset_on_return=None, **kw)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own transaction handling is off).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        if self.is_sqlite:
            self.engine = _make_sqlite_engine(self.url, immediate=True, echo=echo)
            self.read_engine = _make_sqlite_engine(self.url, immediate=False, echo=echo)
        else:
            self.engine = create_async_engine(self.url, echo=echo, pool_pre_ping=True)
            self.read_engine = self.engine
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        async with self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
