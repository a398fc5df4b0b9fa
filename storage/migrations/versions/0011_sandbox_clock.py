"""sandbox clock: the sandbox's test clock kept in its database, shared by every process on it (bot.sandbox.clock)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 15:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sandbox_clock',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('offset_us', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=False), nullable=False),  # naive UTC (storage.models.UTCDateTime)
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_clock'))
    )


def downgrade() -> None:
    op.drop_table('sandbox_clock')
