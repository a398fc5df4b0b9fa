"""The queue triggers of ``applications`` (storage/queue_versions.py): there at the newest
revision, as the live code writes them, counting every change of a waiting order and nothing
else; a migration that loses them is refused (on SQLite a ``batch_alter_table`` of
``applications`` rebuilds the table and drops them silently), and a database found without them
is repaired when it is migrated (``kezek run`` migrates first)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select
from sqlalchemy.engine import Connection

from services.clock import FrozenClock
from services.kezek import Kezek
from storage.db import Database
from storage.migrate import MIGRATIONS, alembic_config, upgrade
from storage.models import Application
from storage.queue_versions import TRIGGERS, create_triggers_sql, missing_triggers, queue_version
from tests.support.databases import BACKENDS, empty_database, on_database, sql
from tests.support.world import World, almaty


def _words(sql: str) -> str:
    return " ".join(sql.split())


def installed(connection: Connection) -> dict[str, str]:
    """The queue triggers on ``applications`` as the database holds them: name -> DDL (SQLite) or
    the source of the trigger's function (PostgreSQL), whitespace folded."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'applications'")
    else:
        rows = connection.exec_driver_sql(
            "SELECT t.tgname, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE t.tgrelid = 'applications'::regclass AND NOT t.tgisinternal")
    return {name: _words(sql) for name, sql in rows}


def live(dialect: str) -> dict[str, str]:
    """The same, from the live DDL (``create_triggers_sql``)."""
    out = {}
    for statement in create_triggers_sql(dialect):
        if dialect == "sqlite":
            out[statement.split()[2]] = _words(statement)
        elif statement.startswith("CREATE OR REPLACE FUNCTION"):
            event = re.search(r"kezek_queue_changed_(\w+)\(", statement).group(1)  # type: ignore[union-attr]
            out[f"tr_applications_queue_{event}"] = _words(statement.split("$$")[1])
    return out


async def test_the_queue_triggers_are_there_at_head_as_the_live_code_writes_them(db: Database) -> None:
    async with db.engine.connect() as conn:
        found = await conn.run_sync(installed)
        assert await conn.run_sync(missing_triggers) == []
    assert sorted(found) == sorted(TRIGGERS)
    assert found == live(db.engine.dialect.name)  # a change of the live DDL needs a migration that installs it


async def versions(db: Database, *queues: tuple[int, int]) -> list[int]:
    async with db.read() as session:
        return [int((await session.execute(select(queue_version(d, y)))).scalar_one()) for d, y in queues]


async def test_the_triggers_count_every_change_of_a_waiting_order_and_nothing_else(
        db: Database, world: World) -> None:
    first, second = await world.apps(world.row(), world.row())
    elsewhere = await world.apps(world.row(district="ALM-MED"))
    async with db.read() as session:
        apps = {a.number: a for a in (await session.execute(select(Application))).scalars()}
    here, there = ((apps[first].district_id, 2023), (apps[elsewhere[0]].district_id, 2023))
    steps = [
        ("a waiting application joins", lambda: world.apps(world.row()), [1, 0]),
        ("a column outside the order changes", lambda: sql(
            db, "UPDATE applications SET phone = '+77010000000', updated_at = updated_at"), [0, 0]),
        ("a waiting one's place key changes", lambda: sql(
            db, "UPDATE applications SET priv_rank = 0 WHERE number = :n", n=second), [1, 0]),
        ("a waiting one leaves the queue", lambda: sql(
            db, "UPDATE applications SET status = 'withdrawn' WHERE number = :n", n=second), [1, 0]),
        ("one out of the queue changes its key", lambda: sql(
            db, "UPDATE applications SET priv_rank = 2 WHERE number = :n", n=second), [0, 0]),
        ("a waiting one moves to another district", lambda: sql(
            db, "UPDATE applications SET district_id = :d WHERE number = :n", d=there[0], n=first), [1, 1]),
        ("a waiting one is deleted", lambda: sql(
            db, "DELETE FROM applications WHERE number = :n", n=elsewhere[0]), [0, 1]),
    ]
    for what, change, moved in steps:
        before = await versions(db, here, there)
        await change()
        after = await versions(db, here, there)
        assert [int(a > b) for a, b in zip(after, before, strict=True)] == moved, what


# --- a migration that loses them ------------------------------------------------------------------

REBUILD = """
    with op.batch_alter_table("applications", recreate="always") as batch_op:
        batch_op.add_column(sa.Column("scratch", sa.Integer(), nullable=True))
"""
DROP_ONE = """
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER tr_applications_queue_update")
    else:
        op.execute("DROP TRIGGER tr_applications_queue_update ON applications")
"""


# The newest revision of the repository: the throwaway one comes after it.
HEAD = str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def throwaway(tmp_path: Path, url: str, body: str) -> Any:
    """An Alembic configuration of ``url`` with one more revision after the head: ``body``."""
    folder = tmp_path / "throwaway"
    folder.mkdir()
    (folder / "9001_throwaway.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = '9001'\ndown_revision = '{HEAD}'\nbranch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{body}\n\ndef downgrade() -> None:\n    pass\n")
    cfg = alembic_config(url)
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), str(folder)]))
    return cfg


def state(connection: Connection) -> tuple[Any, ...]:
    tables = (connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
              if connection.dialect.name == "sqlite" else
              connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    columns = (connection.exec_driver_sql("SELECT name FROM pragma_table_info('applications')")
               if connection.dialect.name == "sqlite" else
               connection.exec_driver_sql("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'applications'"))
    version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return version, sorted(r[0] for r in tables), sorted(r[0] for r in columns), sorted(installed(connection))


def test_a_batch_rebuild_of_applications_on_sqlite_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    upgrade(url)
    before = on_database(url, state)
    with pytest.raises(Exception, match=r"upgrade to 9001 left the applications table without "
                                        r"tr_applications_queue_insert, .*batch_alter_table"):
        command.upgrade(throwaway(tmp_path, url, REBUILD), "head")
    assert on_database(url, state) == before  # the whole step rolled back: no scratch column, no temp table
    assert before[0] == HEAD and before[3] == sorted(TRIGGERS)


def test_a_rebuild_that_creates_the_triggers_again_from_its_own_copy_goes_through(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    upgrade(url)
    frozen = "".join(f"    op.execute({s!r})\n" for s in create_triggers_sql("sqlite"))  # as a migration would
    command.upgrade(throwaway(tmp_path, url, REBUILD + frozen), "head")
    version, _tables, columns, triggers = on_database(url, state)
    assert version == "9001" and "scratch" in columns and triggers == sorted(TRIGGERS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_migration_that_drops_a_queue_trigger_is_refused(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path) as url:
        upgrade(url)
        before = on_database(url, state)
        with pytest.raises(Exception, match="upgrade to 9001 left the applications table without "
                                            "tr_applications_queue_update"):
            command.upgrade(throwaway(tmp_path, url, DROP_ONE), "head")
        assert on_database(url, state) == before


# --- a database found without them ----------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_found_without_its_triggers_is_repaired_when_migrated(
        backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock(almaty(2026, 9, 7, 10, 0))

    async def on_kezek(call: Any) -> Any:
        db = Database(url)
        try:
            return await call(Kezek(db, clock), db)
        finally:
            await db.dispose()

    async def seed(kz: Kezek, db: Database) -> tuple[str, tuple[int, int]]:
        world = await World(kz, clock).setup()
        first, _ = await world.apps(world.row(), world.row())
        async with db.read() as session:
            app = (await session.execute(select(Application).where(Application.number == first))).scalar_one()
        return first, (app.district_id, app.birth_year)

    async def version(kz: Kezek, db: Database) -> int:
        return (await versions(db, queue))[0]

    async def moved(kz: Kezek, db: Database) -> None:  # a waiting one's key: a change of its queue
        await sql(db, "UPDATE applications SET submitted_at = :at WHERE number = :n",
                  at=dt.datetime(2023, 1, 1, 4, 0), n=first)  # noqa: DTZ001 - raw SQL: the stored form

    with empty_database(backend, tmp_path) as url:
        upgrade(url)
        first, queue = asyncio.run(on_kezek(seed))
        damage = "DROP TRIGGER tr_applications_queue_update" + ("" if backend == "sqlite" else " ON applications")
        asyncio.run(on_kezek(lambda kz, db: sql(db, damage)))
        v0 = asyncio.run(on_kezek(version))
        asyncio.run(on_kezek(moved))
        assert asyncio.run(on_kezek(version)) == v0  # uncounted: the damage the repair makes up for
        with caplog.at_level(logging.WARNING, logger="kezek.migrate"):
            upgrade(url)  # what `kezek run` and `kezek db upgrade` do first
        assert "lost its queue triggers (tr_applications_queue_update)" in caplog.text
        assert on_database(url, missing_triggers) == []
        v1 = asyncio.run(on_kezek(version))
        assert v1 > v0  # every queue's version moved: a number kept for v0 is not used again
        asyncio.run(on_kezek(moved))
        assert asyncio.run(on_kezek(version)) == v1  # the same key again: no change
        asyncio.run(on_kezek(lambda kz, db: sql(db, "UPDATE applications SET priv_rank = 0 WHERE number = :n",
                                                  n=first)))
        assert asyncio.run(on_kezek(version)) == v1 + 1  # counted again
        caplog.clear()
        upgrade(url)
        assert "queue triggers" not in caplog.text  # a whole database: nothing to repair
