"""Alembic environment (async). Run through ``kezek db upgrade`` or ``storage.migrate``.

A run is one transaction, on SQLite as on PostgreSQL: a step that fails leaves the database as it
was before the run. (SQLite's own driver would commit DDL one statement at a time: its connection
here is in autocommit mode and the transaction is begun by hand, as storage/db.py does.)

The queue triggers of ``applications`` (storage/queue_versions.py) are checked after every step:
a step that leaves ``queue_changes`` without them (on SQLite a ``batch_alter_table`` of
``applications`` rebuilds the table and drops them silently) is refused, naming the step. A run
that ends at the newest revision repairs a database found without them (``repair_triggers``).
"""

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import event, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import SQLITE_BUSY_TIMEOUT_MS, normalise_url
from storage.models import Base, UTCDateTime
from storage.queue_versions import missing_triggers, repair_triggers

config = context.config
target_metadata = Base.metadata
log = logging.getLogger("kezek.migrate")


class LostQueueTriggers(RuntimeError):
    """A migration step left ``applications`` without its queue triggers."""


def _render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    """Autogenerate writes a UTC moment's column as its plain DDL, so that a new migration imports
    no live code (storage.models)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=False)"
    return False


class _QueueTriggerGuard:
    """``on_version_apply``: refuse a step after which ``applications`` lacks a queue trigger it had
    before the step (a database that lacked them already is left to the repair at head)."""

    def __init__(self, connection: Connection) -> None:
        self.connection, self.whole = connection, True

    def start(self) -> None:
        self.whole = not missing_triggers(self.connection)

    def __call__(self, ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any],
                 run_args: Mapping[str, Any]) -> None:
        missing = missing_triggers(self.connection)
        if missing and self.whole:
            revision = step.up_revision_id if step.is_upgrade else ", ".join(step.down_revision_ids) or "base"
            raise LostQueueTriggers(
                f"The {'upgrade to' if step.is_upgrade else 'downgrade to'} {revision} left the applications "
                f"table without {', '.join(missing)}: on SQLite batch_alter_table('applications') rebuilds "
                "the table and drops its triggers; create them again in that migration, from a frozen copy "
                "of their DDL (storage/queue_versions.py). Nothing was migrated.")
        self.whole = not missing


def _do_run(connection: Connection) -> None:
    guard = _QueueTriggerGuard(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
        transactional_ddl=True,
        on_version_apply=guard,
    )
    with context.begin_transaction():
        guard.start()
        context.run_migrations()
        if set(context.get_context().get_current_heads()) == set(context.get_head_revisions() or ()):
            repaired = repair_triggers(connection)
            if repaired:
                log.warning("The applications table had lost its queue triggers (%s): created again, "
                            "and every queue's version moved on.", ", ".join(repaired))


def _sqlite_transactions(engine: Any) -> None:
    """SQLite: the driver in autocommit mode and BEGIN IMMEDIATE sent by hand, so that the DDL of a
    run is inside its transaction (the driver's own handling begins a transaction only at the first
    INSERT/UPDATE/DELETE, and runs the DDL before it one statement at a time). A run waits for a
    writer of the running bot as its writes do (the same busy timeout, storage/db.py)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # (storage.migrate and ``kezek db`` always set it)
        raise RuntimeError("alembic: no sqlalchemy.url in the configuration")
    return normalise_url(url)


async def _run_async() -> None:
    url = _url()
    engine = create_async_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _do_run(connection)
    else:
        asyncio.run(_run_async())
