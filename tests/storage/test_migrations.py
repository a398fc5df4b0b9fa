"""The Alembic migrations build exactly the schema the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import Database
from storage.models import Base


async def test_models_match_migrations(db: Database) -> None:
    def diff(sync_conn):
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


def head() -> str:
    """The newest revision (what `upgrade` leaves a database at)."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def test_the_fsm_states_migration_goes_down_and_up_again(tmp_path) -> None:
    """0010 (fsm_states) is undone and done again on a copy of a migrated database (SQLite; the
    PostgreSQL schema of the same DDL is compared above)."""
    import sqlite3

    from alembic import command

    from storage.migrate import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0009")
    with sqlite3.connect(tmp_path / "kezek.sqlite3") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "fsm_states" not in tables and "queue_versions" in tables
    upgrade(url)
    with sqlite3.connect(tmp_path / "kezek.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM fsm_states").fetchone() == (0,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)


def test_the_sandbox_clock_migration_goes_down_and_up_again(tmp_path) -> None:
    """0011 (sandbox_clock, bot/sandbox/clock.py) is undone and done again (SQLite; the PostgreSQL
    schema of the same DDL is compared above)."""
    import sqlite3

    from alembic import command

    from storage.migrate import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0010")
    with sqlite3.connect(tmp_path / "kezek.sqlite3") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "sandbox_clock" not in tables and "fsm_states" in tables
    upgrade(url)
    with sqlite3.connect(tmp_path / "kezek.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM sandbox_clock").fetchone() == (0,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)
