"""queue versions: the database counts each change of a queue's waiting order (storage.queue_versions)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:00:00.000000

The triggers' DDL is a frozen copy of what storage/queue_versions.py wrote when this revision was
made (the waiting status is the literal 'queued'): a migration never imports live code, so that a
later change of the live DDL or of storage.vocab cannot change what this revision does. A later
revision that changes the triggers writes its own DDL; one that rebuilds ``applications`` on
SQLite (``batch_alter_table``: a new table, the triggers gone) creates them again in its own
revision, or storage/migrations/env.py refuses it (tests/storage/test_queue_triggers.py).
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# SQLite: row triggers.
SQLITE_CREATE = (
    """CREATE TRIGGER tr_applications_queue_insert AFTER INSERT ON applications
        WHEN NEW.status = 'queued'
        BEGIN
          INSERT INTO queue_changes (district_id, birth_year) VALUES (NEW.district_id, NEW.birth_year);
        END""",
    """CREATE TRIGGER tr_applications_queue_delete AFTER DELETE ON applications
        WHEN OLD.status = 'queued'
        BEGIN
          INSERT INTO queue_changes (district_id, birth_year) VALUES (OLD.district_id, OLD.birth_year);
        END""",
    """CREATE TRIGGER tr_applications_queue_update AFTER UPDATE ON applications
        WHEN (OLD.status = 'queued' OR NEW.status = 'queued')
         AND (OLD.status IS NOT NEW.status OR OLD.priv_rank IS NOT NEW.priv_rank OR OLD.submitted_at IS NOT NEW.submitted_at OR OLD.number IS NOT NEW.number OR OLD.district_id IS NOT NEW.district_id OR OLD.birth_year IS NOT NEW.birth_year)
        BEGIN
          INSERT INTO queue_changes (district_id, birth_year) VALUES (OLD.district_id, OLD.birth_year);
          INSERT INTO queue_changes (district_id, birth_year) SELECT NEW.district_id, NEW.birth_year
            WHERE NEW.district_id IS NOT OLD.district_id OR NEW.birth_year IS NOT OLD.birth_year;
        END""",
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS tr_applications_queue_insert",
    "DROP TRIGGER IF EXISTS tr_applications_queue_delete",
    "DROP TRIGGER IF EXISTS tr_applications_queue_update",
)
# PostgreSQL: statement triggers with transition tables (a function and a trigger per event).
PG_CREATE = (
    """CREATE OR REPLACE FUNCTION kezek_queue_changed_insert() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN 
        INSERT INTO queue_changes (district_id, birth_year)
        SELECT DISTINCT district_id, birth_year FROM new_rows WHERE status = 'queued'; RETURN NULL; END $$""",
    """CREATE TRIGGER tr_applications_queue_insert AFTER INSERT ON applications
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kezek_queue_changed_insert()""",
    """CREATE OR REPLACE FUNCTION kezek_queue_changed_delete() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN 
        INSERT INTO queue_changes (district_id, birth_year)
        SELECT DISTINCT district_id, birth_year FROM old_rows WHERE status = 'queued'; RETURN NULL; END $$""",
    """CREATE TRIGGER tr_applications_queue_delete AFTER DELETE ON applications
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kezek_queue_changed_delete()""",
    """CREATE OR REPLACE FUNCTION kezek_queue_changed_update() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN 
        INSERT INTO queue_changes (district_id, birth_year)
        SELECT DISTINCT q.district_id, q.birth_year
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.district_id, o.birth_year), (n.district_id, n.birth_year))
             AS q (district_id, birth_year)
        WHERE (o.status = 'queued' OR n.status = 'queued')
          AND (o.status, o.priv_rank, o.submitted_at, o.number, o.district_id, o.birth_year) IS DISTINCT FROM
              (n.status, n.priv_rank, n.submitted_at, n.number, n.district_id, n.birth_year); RETURN NULL; END $$""",
    """CREATE TRIGGER tr_applications_queue_update AFTER UPDATE ON applications
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kezek_queue_changed_update()""",
)
PG_DROP = (
    "DROP TRIGGER IF EXISTS tr_applications_queue_insert ON applications",
    "DROP FUNCTION IF EXISTS kezek_queue_changed_insert()",
    "DROP TRIGGER IF EXISTS tr_applications_queue_delete ON applications",
    "DROP FUNCTION IF EXISTS kezek_queue_changed_delete()",
    "DROP TRIGGER IF EXISTS tr_applications_queue_update ON applications",
    "DROP FUNCTION IF EXISTS kezek_queue_changed_update()",
)


def upgrade() -> None:
    op.create_table('queue_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_changes'))
    )
    with op.batch_alter_table('queue_changes', schema=None) as batch_op:
        batch_op.create_index('ix_queue_changes_queue', ['district_id', 'birth_year'], unique=False)

    op.create_table('queue_versions',
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('base', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('district_id', 'birth_year', name=op.f('pk_queue_versions'))
    )
    for statement in SQLITE_CREATE if op.get_bind().dialect.name == "sqlite" else PG_CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in SQLITE_DROP if op.get_bind().dialect.name == "sqlite" else PG_DROP:
        op.execute(statement)
    op.drop_table('queue_versions')
    with op.batch_alter_table('queue_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_changes_queue')

    op.drop_table('queue_changes')
