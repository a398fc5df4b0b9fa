"""fsm states: the bot's dialogues half-way, kept in its own database when no Redis is configured (bot.telegram.fsm_storage)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fsm_states',
    sa.Column('bot_id', sa.BigInteger(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('thread_id', sa.BigInteger(), nullable=False),
    sa.Column('business_connection_id', sa.String(length=255), nullable=False),
    sa.Column('destiny', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=255), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=False), nullable=False),  # naive UTC (storage.models.UTCDateTime)
    sa.PrimaryKeyConstraint('bot_id', 'chat_id', 'user_id', 'thread_id', 'business_connection_id', 'destiny',
                            name=op.f('pk_fsm_states'))
    )
    with op.batch_alter_table('fsm_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fsm_states_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fsm_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fsm_states_updated_at'))

    op.drop_table('fsm_states')
