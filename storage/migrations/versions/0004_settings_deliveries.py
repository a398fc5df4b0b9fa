"""chat settings (optional notices, own e-mail) and deliveries (one notice to one recipient)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 13:53:12.503944
"""
import sqlalchemy as sa
from alembic import op


# The UTC moments' columns: sa.DateTime(timezone=False), the DDL of storage.models.UTCDateTime
# (naive UTC); a migration imports no live code, so a later change of the models cannot change it.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('outbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('target', sa.String(length=320), nullable=False),
    sa.Column('lang', sa.String(length=2), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=False), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_deliveries_outbox_id_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('outbox_id', 'channel', 'target', name=op.f('uq_deliveries_outbox_id'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_due', ['channel', 'status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_moves', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('notify_reminders', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('notify_open_seats', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('email_pending', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('email_code_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('email_code_expires_at', sa.DateTime(timezone=False), nullable=True))
        batch_op.add_column(sa.Column('email_code_attempts', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_column('email_code_attempts')
        batch_op.drop_column('email_code_expires_at')
        batch_op.drop_column('email_code_hash')
        batch_op.drop_column('email_pending')
        batch_op.drop_column('email')
        batch_op.drop_column('notify_open_seats')
        batch_op.drop_column('notify_reminders')
        batch_op.drop_column('notify_moves')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_due')

    op.drop_table('deliveries')
