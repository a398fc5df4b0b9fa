"""staff: kindergarten staff in the bot and the invitations that bind them (services/staff.py)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 21:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_invites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kindergarten_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=False), nullable=False),  # naive UTC (storage.models.UTCDateTime)
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=False), nullable=True),
    sa.Column('used_by', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=False), nullable=True),
    sa.ForeignKeyConstraint(['kindergarten_id'], ['kindergartens.id'],
                            name=op.f('fk_staff_invites_kindergarten_id_kindergartens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_invites'))
    )
    with op.batch_alter_table('staff_invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_invites_kindergarten_id'), ['kindergarten_id'], unique=False)
    op.create_table('staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kindergarten_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('invite_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=False), nullable=True),
    sa.ForeignKeyConstraint(['invite_id'], ['staff_invites.id'], name=op.f('fk_staff_invite_id_staff_invites')),
    sa.ForeignKeyConstraint(['kindergarten_id'], ['kindergartens.id'],
                            name=op.f('fk_staff_kindergarten_id_kindergartens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('kindergarten_id', 'user_id', name=op.f('uq_staff_kindergarten_id'))
    )
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_user_id'))
    op.drop_table('staff')
    with op.batch_alter_table('staff_invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_invites_kindergarten_id'))
    op.drop_table('staff_invites')
