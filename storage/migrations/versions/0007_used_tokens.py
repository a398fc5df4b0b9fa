"""single-use signed tokens (one-tap linking deep links): which were used

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


# The UTC moments' columns: sa.DateTime(timezone=False), the DDL of storage.models.UTCDateTime
# (naive UTC); a migration imports no live code, so a later change of the models cannot change it.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('used_tokens',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.BigInteger(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=True),
    sa.Column('used_at', sa.DateTime(timezone=False), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_used_tokens'))
    )


def downgrade() -> None:
    op.drop_table('used_tokens')
