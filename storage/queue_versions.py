"""Queue versions: the database counts every change of a queue's waiting order.

A queue (a district and a birth year) changes when a waiting application joins it, leaves it
(referred, removed, withdrawn, deleted), or has its place key changed (privilege rank,
submission moment, number) or its queue changed (district, birth year). Triggers on
``applications`` write one ``queue_changes`` row per queue per change, in the changing
transaction, whatever code made it (the services, an import, an operator's SQL).

``queue_version`` (SQL) is ``queue_versions.base`` + the count of the queue's ``queue_changes``
rows. Why this is a faithful version on PostgreSQL as on SQLite: every transaction that changes
the queue adds at least one row and none is removed except by the fold, which moves them into
``base`` in one transaction, leaving the sum as it was; the committed transactions a snapshot
sees only grow from one snapshot to the next. So two reads that see the same version see the
same waiting order. (The newest id would not do: ids are handed out before commit, and a later
id can commit first.)

``fold_queue_changes`` keeps the count small: the sweeps call it, and an import after its load.

PostgreSQL: statement triggers with transition tables (a bulk insert or update writes one row per
queue per statement). SQLite: row triggers.

The DDL here is the live one: migration 0009 installed a frozen copy of it, and a test holds the two
alike (tests/storage/test_queue_triggers.py); a change here needs a migration that installs it. The trap:
on SQLite, Alembic's ``batch_alter_table`` rebuilds a table (a new one, copied, renamed) and the
old table's triggers go with it, silently. So the migration environment (storage/migrations/env.py)
checks after every step that ``applications`` still has its queue triggers while ``queue_changes``
exists (``missing_triggers``) and refuses a step that lost them; a migration that rebuilds
``applications`` creates them again itself, from its own frozen copy of this DDL. A database found
without them at head (damaged by hand, or by an older migration) is repaired when it is migrated,
which ``kezek run`` does first (``repair_triggers``).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import QueueChange, QueueVersion
from storage.vocab import AppStatus

# The columns of the waiting order: a change of any of them, on a waiting application (before or
# after), is a change of its queue.
ORDER_COLUMNS = ("status", "priv_rank", "submitted_at", "number", "district_id", "birth_year")
QUEUED = AppStatus.QUEUED  # as the triggers' literal

_PG_FUNCTIONS = {
    "insert": f"""
        INSERT INTO queue_changes (district_id, birth_year)
        SELECT DISTINCT district_id, birth_year FROM new_rows WHERE status = '{QUEUED}';""",
    "delete": f"""
        INSERT INTO queue_changes (district_id, birth_year)
        SELECT DISTINCT district_id, birth_year FROM old_rows WHERE status = '{QUEUED}';""",
    "update": f"""
        INSERT INTO queue_changes (district_id, birth_year)
        SELECT DISTINCT q.district_id, q.birth_year
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.district_id, o.birth_year), (n.district_id, n.birth_year))
             AS q (district_id, birth_year)
        WHERE (o.status = '{QUEUED}' OR n.status = '{QUEUED}')
          AND ({", ".join("o." + c for c in ORDER_COLUMNS)}) IS DISTINCT FROM
              ({", ".join("n." + c for c in ORDER_COLUMNS)});""",
}
_PG_TABLES = {"insert": "NEW TABLE AS new_rows", "delete": "OLD TABLE AS old_rows",
              "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}

_SQLITE_TRIGGERS = {
    "insert": f"""CREATE TRIGGER tr_applications_queue_insert AFTER INSERT ON applications
        WHEN NEW.status = '{QUEUED}'
        BEGIN
          INSERT INTO queue_changes (district_id, birth_year) VALUES (NEW.district_id, NEW.birth_year);
        END""",
    "delete": f"""CREATE TRIGGER tr_applications_queue_delete AFTER DELETE ON applications
        WHEN OLD.status = '{QUEUED}'
        BEGIN
          INSERT INTO queue_changes (district_id, birth_year) VALUES (OLD.district_id, OLD.birth_year);
        END""",
    "update": f"""CREATE TRIGGER tr_applications_queue_update AFTER UPDATE ON applications
        WHEN (OLD.status = '{QUEUED}' OR NEW.status = '{QUEUED}')
         AND ({" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ORDER_COLUMNS)})
        BEGIN
          INSERT INTO queue_changes (district_id, birth_year) VALUES (OLD.district_id, OLD.birth_year);
          INSERT INTO queue_changes (district_id, birth_year) SELECT NEW.district_id, NEW.birth_year
            WHERE NEW.district_id IS NOT OLD.district_id OR NEW.birth_year IS NOT OLD.birth_year;
        END""",
}


def create_triggers_sql(dialect: str) -> list[str]:
    """The DDL that makes ``applications`` write its queues' changes (migration 0009; again after
    any migration that rebuilds the table on SQLite)."""
    if dialect == "sqlite":
        return list(_SQLITE_TRIGGERS.values())
    out = []
    for event, body in _PG_FUNCTIONS.items():
        out.append(f"""CREATE OR REPLACE FUNCTION kezek_queue_changed_{event}() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$""")
        out.append(f"""CREATE TRIGGER tr_applications_queue_{event} AFTER {event.upper()} ON applications
            REFERENCING {_PG_TABLES[event]} FOR EACH STATEMENT EXECUTE FUNCTION kezek_queue_changed_{event}()""")
    return out


def drop_triggers_sql(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS tr_applications_queue_{event}" for event in _SQLITE_TRIGGERS]
    out = []
    for event in _PG_FUNCTIONS:
        out.append(f"DROP TRIGGER IF EXISTS tr_applications_queue_{event} ON applications")
        out.append(f"DROP FUNCTION IF EXISTS kezek_queue_changed_{event}()")
    return out


TRIGGERS = tuple(f"tr_applications_queue_{event}" for event in _SQLITE_TRIGGERS)


def missing_triggers(connection: Connection) -> list[str]:
    """The queue triggers ``applications`` lacks (a disabled one on PostgreSQL counts as lacking),
    on a database that counts queue changes (``queue_changes`` exists: migration 0009 or later);
    none before that. ``connection``: a synchronous one (``AsyncConnection.run_sync``)."""
    if connection.dialect.name == "sqlite":
        if connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue_changes'").first() is None:
            return []
        found = {name for (name,) in connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'applications'")}
    else:
        if connection.exec_driver_sql("SELECT to_regclass('queue_changes')").scalar() is None:
            return []
        found = {name for (name,) in connection.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('applications') "
            "AND NOT tgisinternal AND tgenabled <> 'D'")}
    return [name for name in TRIGGERS if name not in found]


def repair_triggers(connection: Connection) -> list[str]:
    """Create the queue triggers again when some are missing (the live DDL: only on a database at
    the newest revision), and move the version of every queue: a change made while they were
    missing was not counted, so a queue number kept for a version may be stale. Returns the
    triggers that were missing (nothing done when none). In the caller's transaction."""
    missing = missing_triggers(connection)
    if missing:
        dialect = connection.dialect.name
        for statement in [*drop_triggers_sql(dialect), *create_triggers_sql(dialect)]:
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(
            "INSERT INTO queue_changes (district_id, birth_year) SELECT district_id, birth_year FROM "
            "applications UNION SELECT district_id, birth_year FROM queue_versions")
    return missing


def queue_version(district_id: Any, birth_year: Any) -> Any:
    """SQL: the version of the queue of (``district_id``, ``birth_year``): columns of an outer
    query or bound parameters. Two index lookups: the folded base and a count of the few changes
    since the last fold."""
    base = (select(QueueVersion.base)
            .where(QueueVersion.district_id == district_id, QueueVersion.birth_year == birth_year)
            .scalar_subquery())
    changes = (select(func.count()).select_from(QueueChange)
               .where(QueueChange.district_id == district_id, QueueChange.birth_year == birth_year)
               .scalar_subquery())
    return func.coalesce(base, 0) + changes


# One statement on PostgreSQL: the rows it deletes are the rows it counts, whatever commits
# meanwhile (a change committed after it started stays for the next fold).
FOLD_PG_SQL = """
    WITH gone AS (DELETE FROM queue_changes RETURNING district_id, birth_year),
         folded AS (SELECT district_id, birth_year, count(*) AS n FROM gone GROUP BY district_id, birth_year),
         added AS (INSERT INTO queue_versions (district_id, birth_year, base)
                   SELECT district_id, birth_year, n FROM folded
                   ON CONFLICT (district_id, birth_year) DO UPDATE SET base = queue_versions.base + excluded.base)
    SELECT coalesce(sum(n), 0) FROM folded"""
# SQLite: inside one write transaction nothing else commits, so up to the newest id is exact.
FOLD_SQLITE_SQL = ("""
    INSERT INTO queue_versions (district_id, birth_year, base)
    SELECT district_id, birth_year, count(*) FROM queue_changes WHERE id <= :last
    GROUP BY district_id, birth_year
    ON CONFLICT (district_id, birth_year) DO UPDATE SET base = queue_versions.base + excluded.base""",
                   "DELETE FROM queue_changes WHERE id <= :last")


# PostgreSQL: one fold at a time (two would delete each other's rows in their own orders and could
# deadlock); a fold that finds another running leaves the work to it. (The two-key form: another
# space than offers' one-key queue locks.)
_FOLD_LOCK = text("SELECT pg_try_advisory_xact_lock(19290, 1)")


async def fold_queue_changes(session: AsyncSession) -> int:
    """Move the queues' changes into their bases, in the caller's write transaction (a short one
    of its own: it holds the fold's lock until it ends); no version changes. Returns how many
    changes were folded."""
    if session.get_bind().dialect.name != "sqlite":
        if not (await session.execute(_FOLD_LOCK)).scalar():
            return 0
        return int((await session.execute(text(FOLD_PG_SQL))).scalar() or 0)
    last = (await session.execute(select(func.max(QueueChange.id)))).scalar()
    if last is None:
        return 0
    await session.execute(text(FOLD_SQLITE_SQL[0]), {"last": last})
    result = cast(CursorResult[Any], await session.execute(text(FOLD_SQLITE_SQL[1]), {"last": last}))
    return int(result.rowcount or 0)
