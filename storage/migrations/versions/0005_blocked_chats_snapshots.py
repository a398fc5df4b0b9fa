"""blocked chats and nightly queue snapshots

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 15:00:26.721846
"""
from alembic import op
import sqlalchemy as sa


# The UTC moments' columns: sa.DateTime(timezone=False), the DDL of storage.models.UTCDateTime
# (naive UTC); a migration imports no live code, so a later change of the models cannot change it.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queue_snapshots',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_queue_snapshots_application_id_applications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('day', 'application_id', name=op.f('pk_queue_snapshots'))
    )
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocked_at', sa.DateTime(timezone=False), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_column('blocked_at')

    op.drop_table('queue_snapshots')
