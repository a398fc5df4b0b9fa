"""The test databases: SQLite always, PostgreSQL on KEZEK_TEST_POSTGRES_URL's server when it is set
(.ci/run sets it), and Redis (the scale-out FSM, event isolation and throttle store) where it
answers. The fixtures built on these are in tests/conftest.py."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database, normalise_url
from storage.models import Base

PG_URL = os.environ.get("KEZEK_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KEZEK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# The parameters of a test that runs on each backend (the ``db_url`` fixture's).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def new_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on KEZEK_TEST_POSTGRES_URL's server; dropped afterwards."""
    assert PG_URL
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = normalise_url(PG_URL)

    async def run(sql: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of ``backend`` (a PostgreSQL one is dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set KEZEK_TEST_POSTGRES_URL (.ci/run does)")
    with new_pg_database("kezek_migrations") as url:
        yield url


async def truncate_pg(db: Database) -> None:
    """Empty the session's PostgreSQL database for the next test (its default rule profile stays)."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "rule_profiles")
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await conn.execute(text("DELETE FROM rule_profiles WHERE code <> 'default'"))


def on_database(url: str, read: Any) -> Any:
    """``read(connection)`` on a synchronous connection to ``url``."""
    async def go() -> Any:
        engine = create_async_engine(normalise_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def sql(db: Database, statement: str, **params: Any) -> None:
    """One raw statement, written (what no facade call would do: a test's own damage or shortcut)."""
    async with db.write() as session:
        await session.execute(text(statement), params)


async def redis_client() -> Any:
    """A client of the test Redis, or a skip with the reason when it is not reachable."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        await client.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {type(exc).__name__}")
    return client
