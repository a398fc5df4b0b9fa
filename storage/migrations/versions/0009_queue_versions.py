"""queue versions: the database counts each change of a queue's waiting order (storage.queue_versions)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

from storage.queue_versions import create_triggers_sql, drop_triggers_sql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


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
    for statement in create_triggers_sql(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_triggers_sql(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table('queue_versions')
    with op.batch_alter_table('queue_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_changes_queue')

    op.drop_table('queue_changes')
