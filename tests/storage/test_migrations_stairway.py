"""The stairway: every migration goes up, down one step and up again, in order, on SQLite and (with
KEZEK_TEST_POSTGRES_URL) PostgreSQL, and leaves the schema it left the first time. A downgrade
that fails, or leaves a table, an index, a trigger or a function behind, fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.migrate import alembic_config
from tests.support.databases import BACKENDS, empty_database, on_database


def schema(connection: Connection) -> list[tuple[Any, ...]]:
    """What the migrations made: tables, columns, indexes, constraints, triggers and functions."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        # (a table rebuilt by batch mode is renamed into place, and SQLite then quotes its name)
        return sorted((kind, name, table, sql.replace(f'CREATE TABLE "{name}"', f"CREATE TABLE {name}", 1)
                       if kind == "table" else sql) for kind, name, table, sql in rows)
    queries = [
        "SELECT 'column', table_name, column_name, data_type, is_nullable, column_default,"
        " character_maximum_length FROM information_schema.columns WHERE table_schema = current_schema()",
        "SELECT 'index', tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()",
        "SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = current_schema()::regnamespace",
        "SELECT 'trigger', tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
        " WHERE NOT tgisinternal",
        "SELECT 'function', proname, prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace",
        "SELECT 'sequence', sequencename FROM pg_sequences WHERE schemaname = current_schema()",
    ]
    return sorted(tuple(map(str, r)) for q in queries for r in connection.exec_driver_sql(q))


def revisions() -> list[Any]:
    """The revisions, oldest first."""
    return list(reversed(list(ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions())))


def test_the_revisions_are_one_line_from_base_to_head() -> None:
    revs = revisions()
    assert revs[0].down_revision is None
    assert [r.down_revision for r in revs[1:]] == [r.revision for r in revs[:-1]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_migration_goes_down_one_step_and_up_again(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path) as url:
        cfg = alembic_config(url)
        assert on_database(url, schema) == []
        made: list[list[tuple[Any, ...]]] = [[]]  # the schema after each revision, base first
        for rev in revisions():
            command.upgrade(cfg, rev.revision)
            made.append(on_database(url, schema))
            assert made[-1] != made[-2], f"{rev.revision} changed nothing"
            command.downgrade(cfg, rev.down_revision or "base")
            # (the version table stays, empty, when the stairs are back at base)
            back = [r for r in on_database(url, schema) if "alembic_version" not in r]
            assert back == [r for r in made[-2] if "alembic_version" not in r], \
                f"the downgrade of {rev.revision} left another schema than {rev.down_revision or 'base'}'s"
            command.upgrade(cfg, rev.revision)
            assert on_database(url, schema) == made[-1], f"{rev.revision} again made another schema"


def test_no_migration_imports_live_code() -> None:
    """A migration does what it did when it was written: it imports Alembic and SQLAlchemy only, never
    the project (storage.models, storage.queue_versions, storage.vocab...), whose later changes
    would change it."""
    import ast

    from storage.migrate import MIGRATIONS

    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert {m.split(".")[0] for m in modules} <= {"alembic", "sqlalchemy"}, path.name


def test_a_new_migration_is_written_without_live_code(tmp_path: Path) -> None:
    """Autogenerate (README: "New migration") writes a UTC moment's column as its plain DDL, and the
    template imports nothing of the project."""
    import os
    import sqlite3

    from storage.migrate import MIGRATIONS, upgrade

    path = tmp_path / "kezek.sqlite3"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # a column of the models the database lacks: a UTC moment
        conn.execute("ALTER TABLE chats DROP COLUMN blocked_at")
    cfg = alembic_config(f"sqlite:///{path}")
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), str(tmp_path)]))
    script = command.revision(cfg, message="scratch", autogenerate=True, version_path=str(tmp_path), rev_id="9001")
    source = Path(script.path).read_text()  # type: ignore[union-attr]
    assert "sa.Column('blocked_at', sa.DateTime(timezone=False), nullable=True)" in source
    assert "storage" not in source
