"""Shared fixtures: a migrated database per test (SQLite always; PostgreSQL when
KEZEK_TEST_POSTGRES_URL is set, as .ci/run does), a frozen clock, the service facade and a
small world builder."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.calendar import ALMATY
from services.clock import FrozenClock
from services.kezek import Kezek
from services.validation import make_iin
from storage.db import Database, normalise_url
from storage.migrate import upgrade
from storage.models import Base

PG_URL = os.environ.get("KEZEK_TEST_POSTGRES_URL")

# Hypothesis: in CI (.ci/run sets HYPOTHESIS_PROFILE=ci) the same examples on every run, so a red
# build is the code's and can be replayed; on a developer's machine new examples each run, and a
# failure prints the blob that replays it (@reproduce_failure).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def almaty(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ALMATY)  # type: ignore[misc]


# --- databases ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "kezek.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


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


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session, migrated once."""
    if not PG_URL:
        yield None
        return
    with new_pg_database("kezek_test") as url:
        upgrade(url)
        yield url


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


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


async def _truncate_pg(db: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "rule_profiles")
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await conn.execute(text("DELETE FROM rule_profiles WHERE code <> 'default'"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    if database.is_postgres:
        await _truncate_pg(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    # Monday 7 September 2026, 10:00 in Almaty: a working day, inside the claim window.
    return FrozenClock(almaty(2026, 9, 7, 10, 0))


@pytest.fixture
def kz(db: Database, clock: FrozenClock) -> Kezek:
    return Kezek(db, clock)


# --- a world to play in ---------------------------------------------------------------------------

class World:
    """Builds districts, kindergartens and applications with sensible defaults."""

    def __init__(self, kz: Kezek, clock: FrozenClock) -> None:
        self.kz, self.clock = kz, clock
        self.serial = 0

    async def setup(self, profile: dict[str, Any] | None = None) -> World:
        if profile:
            await self.kz.upsert_profiles([{"code": "custom", **profile}])
        await self.kz.upsert_districts([
            {"code": "ALM-BOS", "name_ru": "Бостандыкский район", "name_kk": "Бостандық ауданы",
             "profile": "custom" if profile else ""},
            {"code": "ALM-MED", "name_ru": "Медеуский район", "name_kk": "Медеу ауданы"},
        ])
        await self.kz.upsert_kindergartens([
            {"code": "KG1", "district": "ALM-BOS", "name_ru": "Ясли-сад №1", "name_kk": "№1 бөбекжай-бақша",
             "address": "ул. Тимирязева, 1", "languages": "ru,kk"},
            {"code": "KG2", "district": "ALM-BOS", "name_ru": "Ясли-сад №2", "name_kk": "№2 бөбекжай-бақша",
             "languages": "ru,kk"},
            {"code": "PRIV", "district": "ALM-BOS", "name_ru": "Частный сад «Балапан»",
             "name_kk": "«Балапан» жеке балабақшасы", "kind": "private_state_order", "languages": "ru,kk"},
            {"code": "MED1", "district": "ALM-MED", "name_ru": "Ясли-сад №9", "name_kk": "№9 бөбекжай-бақша"},
        ])
        return self

    def row(self, number: str | None = None, *, birth_date: dt.date = dt.date(2023, 3, 15),
            submitted: dt.datetime | None = None, privilege: str = "none", district: str = "ALM-BOS",
            preferred: list[str] | None = None, twin_group: str | None = None,
            language: str = "ru") -> dict[str, Any]:
        self.serial += 1
        n = self.serial
        return {
            "number": number or f"A{n:05d}",
            "child_iin": make_iin(birth_date, n),
            "child_name": f"Ребёнок {n}",
            "birth_date": birth_date.isoformat(),
            "district": district,
            "language": language,
            "preferred_kindergartens": preferred or [],
            "privilege": privilege,
            "submitted_at": (submitted or almaty(2024, 1, 1, 9, 0) + dt.timedelta(minutes=n)).isoformat(),
            "phone": f"+7701{n:07d}",
            "email": f"parent{n}@example.kz",
            "twin_group": twin_group,
        }

    async def apps(self, *rows: dict[str, Any]) -> list[str]:
        await self.kz.import_applications(list(rows))
        return [r["number"] for r in rows]

    async def publish(self, count: int = 1, kg: str = "KG1", birth_year: int = 2023,
                      language: str = "ru") -> Any:
        return await self.kz.publish_seats(
            {"kindergarten": kg, "birth_year": birth_year, "language": language, "count": count})

    async def number(self, app_number: str) -> int | None:
        return (await self.kz.queue_view(app_number)).number


# Redis on this machine (the scale-out FSM, event isolation and throttle store).
REDIS_URL = os.environ.get("KEZEK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


@pytest.fixture
async def tg(kz: Kezek) -> AsyncIterator[Any]:
    """The real Dispatcher with a recording Bot session (tests/test_bot_start.py's Harness)."""
    from bot.telegram.app import build_dispatcher
    from tests.handlers.test_start import Harness

    harness = Harness(build_dispatcher(kz))
    yield harness
    await harness.bot.session.close()


@pytest.fixture
async def world(kz: Kezek, clock: FrozenClock) -> World:
    return await World(kz, clock).setup()


async def registrations_sent(kz: Kezek) -> None:
    """Mark the registration e-mails of the imported applications as gone out (services/deep_link.py;
    tests/test_deep_link.py tests them), for tests that count the other notices."""
    from sqlalchemy import update

    from services.deep_link import REGISTRATION_KIND
    from storage.models import OutboxMessage

    async with kz.unit("test", with_calendar=False) as ctx:
        await ctx.session.execute(update(OutboxMessage).where(OutboxMessage.kind == REGISTRATION_KIND)
                                  .values(status="done"))


# --- the fast lane ------------------------------------------------------------------------------------
# Files whose tests start processes (bots, senders, a private PostgreSQL, a fresh virtual
# environment), kill them, or play long random sequences: marked ``slow``, so that
# ``pytest -m "not slow"`` is the quick loop of the README. CI runs everything.
SLOW_FILES = frozenset({
    "test_api_schemathesis.py", "test_bench_dispatch.py", "test_bench_load.py", "test_bench_memory.py",
    "test_bot_e2e.py", "test_demo.py", "test_deploy.py", "test_e2e_walk.py", "test_fault_database.py",
    "test_fault_instance_kill.py", "test_fault_smtp.py", "test_first_run.py", "test_fsm_restart.py",
    "test_fuzz.py", "test_properties.py", "test_sandbox_clock_shared.py", "test_sender_crash.py",
    "test_sender_sigkill.py", "test_webhook.py", "test_wheel.py",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
