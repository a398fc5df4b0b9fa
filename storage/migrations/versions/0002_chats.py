"""chats: Telegram chats and their language

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:30:00.000000
"""
import sqlalchemy as sa
from alembic import op


# The UTC moments' columns: sa.DateTime(timezone=False), the DDL of storage.models.UTCDateTime
# (naive UTC); a migration imports no live code, so a later change of the models cannot change it.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chats',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=False), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chats'))
    )


def downgrade() -> None:
    op.drop_table('chats')
