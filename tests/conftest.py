"""The fixtures every folder uses: a migrated database per test (SQLite always; PostgreSQL when
KEZEK_TEST_POSTGRES_URL is set, as .ci/run does), a frozen clock, the service facade, a small world,
the Dispatcher on a mocked Bot, the test Redis and the CLI; and the slow lane's marker. What the
fixtures are built from is in tests/support."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from services.clock import FrozenClock
from services.kezek import Kezek
from storage.db import Database
from storage.migrate import upgrade
from tests.support.cli import Run, migrated_cli
from tests.support.databases import BACKENDS, PG_URL, new_pg_database, redis_client, truncate_pg
from tests.support.lanes import is_slow
from tests.support.telegram import Harness
from tests.support.world import World, almaty

# Hypothesis: in CI (.ci/run sets HYPOTHESIS_PROFILE=ci) the same examples on every run, so a red
# build is the code's and can be replayed; on a developer's machine new examples each run, and a
# failure prints the blob that replays it (@reproduce_failure).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# --- databases ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "kezek.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session, migrated once."""
    if not PG_URL:
        yield None
        return
    with new_pg_database("kezek_test") as url:
        upgrade(url)
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "kezek.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    if url is None:
        pytest.skip("PostgreSQL not configured: set KEZEK_TEST_POSTGRES_URL (.ci/run does)")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    if database.is_postgres:
        await truncate_pg(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    # Monday 7 September 2026, 10:00 in Almaty: a working day, inside the claim window.
    return FrozenClock(almaty(2026, 9, 7, 10, 0))


@pytest.fixture
def kz(db: Database, clock: FrozenClock) -> Kezek:
    return Kezek(db, clock)


@pytest.fixture
async def world(kz: Kezek, clock: FrozenClock) -> World:
    return await World(kz, clock).setup()


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Any, str]]:
    """(a client of the test Redis, a key prefix of this test's own); its keys are removed after."""
    client = await redis_client()
    prefix = f"kezek-test-{uuid.uuid4().hex[:12]}"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


# --- the front ends -----------------------------------------------------------------------------------

@pytest.fixture
async def tg(kz: Kezek) -> AsyncIterator[Harness]:
    """The real Dispatcher on a mocked Bot (tests/support/telegram.py)."""
    from bot.telegram.app import build_dispatcher

    harness = Harness(build_dispatcher(kz))
    yield harness
    await harness.bot.session.close()


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """The ``kezek`` CLI on a migrated SQLite file of the test's own (tests/support/cli.py)."""
    return migrated_cli(tmp_path)


# --- the fast lane ------------------------------------------------------------------------------------

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_slow(item.path):
            item.add_marker(pytest.mark.slow)
