"""links: chats linked to applications, link attempts and e-mail codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


# The UTC moments' columns: sa.DateTime(timezone=False), the DDL of storage.models.UTCDateTime
# (naive UTC); a migration imports no live code, so a later change of the models cannot change it.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_links',
    sa.Column('chat_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False,
              nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'],
                            name=op.f('fk_chat_links_application_id_applications')),
    sa.PrimaryKeyConstraint('chat_id', 'application_id', name=op.f('pk_chat_links'))
    )
    op.create_table('link_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_attempts'))
    )
    with op.batch_alter_table('link_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_link_attempts_chat_at', ['chat_id', 'at'], unique=False)
    op.create_table('link_codes',
    sa.Column('chat_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'],
                            name=op.f('fk_link_codes_application_id_applications')),
    sa.PrimaryKeyConstraint('chat_id', name=op.f('pk_link_codes'))
    )


def downgrade() -> None:
    op.drop_table('link_codes')
    with op.batch_alter_table('link_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_link_attempts_chat_at')
    op.drop_table('link_attempts')
    op.drop_table('chat_links')
