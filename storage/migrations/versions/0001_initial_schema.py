"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 11:39:47.812254
"""
from alembic import op
import sqlalchemy as sa


# The UTC moments' columns: sa.DateTime(timezone=False), the DDL of storage.models.UTCDateTime
# (naive UTC); a migration imports no live code, so a later change of the models cannot change it.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('entity', sa.String(length=30), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('calendar_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('working', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_calendar_days'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('application_id', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=False), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbox_dedupe_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_application_id'), ['application_id'], unique=False)
        batch_op.create_index('ix_outbox_pending', ['status', 'next_attempt_at'], unique=False)

    op.create_table('queue_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('priv_rank', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('cause', sa.String(length=30), nullable=False),
    sa.Column('application_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_events'))
    )
    with op.batch_alter_table('queue_events', schema=None) as batch_op:
        batch_op.create_index('ix_queue_events_queue_at', ['district_id', 'birth_year', 'at'], unique=False)

    op.create_table('queue_states',
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('general_owed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('district_id', 'birth_year', name=op.f('pk_queue_states'))
    )
    op.create_table('rule_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('window_open_minute', sa.Integer(), nullable=False),
    sa.Column('window_close_minute', sa.Integer(), nullable=False),
    sa.Column('offer_windows', sa.Integer(), nullable=False),
    sa.Column('showup_working_days', sa.Integer(), nullable=False),
    sa.Column('stoplist_working_days', sa.Integer(), nullable=False),
    sa.Column('removal_on_annulment', sa.Integer(), nullable=False),
    sa.Column('docs_working_days', sa.Integer(), nullable=False),
    sa.Column('docs_calendar_days', sa.Integer(), nullable=False),
    sa.Column('private_min_age_years', sa.Integer(), nullable=False),
    sa.Column('interleave_general_per_first', sa.Integer(), nullable=False),
    sa.Column('twins_together', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_profiles')),
    sa.UniqueConstraint('code', name=op.f('uq_rule_profiles_code'))
    )
    op.create_table('districts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name_ru', sa.String(length=200), nullable=False),
    sa.Column('name_kk', sa.String(length=200), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['profile_id'], ['rule_profiles.id'], name=op.f('fk_districts_profile_id_rule_profiles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_districts')),
    sa.UniqueConstraint('code', name=op.f('uq_districts_code'))
    )
    op.create_table('applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('child_iin', sa.String(length=12), nullable=False),
    sa.Column('child_name', sa.String(length=200), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('privilege', sa.String(length=20), nullable=False),
    sa.Column('priv_rank', sa.Integer(), nullable=False),
    sa.Column('docs_state', sa.String(length=20), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('missed_referrals', sa.Integer(), nullable=False),
    sa.Column('stoplist_until', sa.DateTime(timezone=False), nullable=True),
    sa.Column('any_kindergarten', sa.Boolean(), nullable=False),
    sa.Column('twin_group', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=False), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_applications_district_id_districts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applications')),
    sa.UniqueConstraint('number', name=op.f('uq_applications_number'))
    )
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index('ix_applications_child_iin', ['child_iin'], unique=False)
        batch_op.create_index('ix_applications_queue', ['district_id', 'birth_year', 'status', 'priv_rank', 'submitted_at', 'number'], unique=False)
        batch_op.create_index('ix_applications_stoplist', ['stoplist_until'], unique=False)
        batch_op.create_index('ix_applications_twin_group', ['twin_group'], unique=False)

    op.create_table('kindergartens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('name_ru', sa.String(length=300), nullable=False),
    sa.Column('name_kk', sa.String(length=300), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('languages', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_kindergartens_district_id_districts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kindergartens')),
    sa.UniqueConstraint('code', name=op.f('uq_kindergartens_code'))
    )
    with op.batch_alter_table('kindergartens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kindergartens_district_id'), ['district_id'], unique=False)

    op.create_table('application_preferences',
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kindergarten_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_application_preferences_application_id_applications'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['kindergarten_id'], ['kindergartens.id'], name=op.f('fk_application_preferences_kindergarten_id_kindergartens')),
    sa.PrimaryKeyConstraint('application_id', 'kindergarten_id', name=op.f('pk_application_preferences'))
    )
    with op.batch_alter_table('application_preferences', schema=None) as batch_op:
        batch_op.create_index('ix_application_preferences_kg', ['kindergarten_id', 'application_id'], unique=False)

    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kindergarten_id', sa.Integer(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['kindergarten_id'], ['kindergartens.id'], name=op.f('fk_groups_kindergarten_id_kindergartens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('kindergarten_id', 'birth_year', 'language', name=op.f('uq_groups_kindergarten_id'))
    )
    op.create_table('queue_looks',
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('viewer', sa.String(length=60), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=False), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_queue_looks_application_id_applications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('application_id', 'viewer', name=op.f('pk_queue_looks'))
    )
    op.create_table('seats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kindergarten_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('birth_year', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=False), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_seats_group_id_groups')),
    sa.ForeignKeyConstraint(['kindergarten_id'], ['kindergartens.id'], name=op.f('fk_seats_kindergarten_id_kindergartens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seats'))
    )
    with op.batch_alter_table('seats', schema=None) as batch_op:
        batch_op.create_index('ix_seats_kindergarten', ['kindergarten_id', 'status'], unique=False)
        batch_op.create_index('ix_seats_status_queue', ['status', 'district_id', 'birth_year'], unique=False)

    op.create_table('offers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=True),
    sa.Column('made_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=False), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_offers_application_id_applications')),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_offers_seat_id_seats')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offers'))
    )
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.create_index('ix_offers_status_expires', ['status', 'expires_at'], unique=False)
        batch_op.create_index('uq_offers_open_application', ['application_id'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
        batch_op.create_index('uq_offers_open_seat', ['seat_id'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_table('referrals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('child_iin', sa.String(length=12), nullable=False),
    sa.Column('seat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kindergarten_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('privilege', sa.String(length=20), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('confirmed_by', sa.String(length=100), nullable=False),
    sa.Column('showup_due_at', sa.DateTime(timezone=False), nullable=False),
    sa.Column('docs_state', sa.String(length=20), nullable=False),
    sa.Column('docs_due_at', sa.DateTime(timezone=False), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=False), nullable=True),
    sa.Column('annul_reason', sa.String(length=30), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_referrals_application_id_applications')),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_referrals_group_id_groups')),
    sa.ForeignKeyConstraint(['kindergarten_id'], ['kindergartens.id'], name=op.f('fk_referrals_kindergarten_id_kindergartens')),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_referrals_seat_id_seats')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_docs', ['docs_state', 'docs_due_at'], unique=False)
        batch_op.create_index('ix_referrals_showup', ['status', 'showup_due_at'], unique=False)
        batch_op.create_index('uq_referrals_issued_child', ['child_iin'], unique=True, sqlite_where=sa.text("status = 'issued'"), postgresql_where=sa.text("status = 'issued'"))
        batch_op.create_index('uq_referrals_live_application', ['application_id'], unique=True, sqlite_where=sa.text("status IN ('issued', 'admitted')"), postgresql_where=sa.text("status IN ('issued', 'admitted')"))
        batch_op.create_index('uq_referrals_live_seat', ['seat_id'], unique=True, sqlite_where=sa.text("status IN ('issued', 'admitted')"), postgresql_where=sa.text("status IN ('issued', 'admitted')"))

    # The default rule profile (RULES.md, "Rule profile"; a district without a profile uses it).
    op.bulk_insert(sa.table(
        "rule_profiles", sa.column("code"), sa.column("name"), sa.column("window_open_minute"),
        sa.column("window_close_minute"), sa.column("offer_windows"), sa.column("showup_working_days"),
        sa.column("stoplist_working_days"), sa.column("removal_on_annulment"),
        sa.column("docs_working_days"), sa.column("docs_calendar_days"),
        sa.column("private_min_age_years"), sa.column("interleave_general_per_first"),
        sa.column("twins_together", sa.Boolean),
    ), [{"code": "default", "name": "Default (DESIGN.md)", "window_open_minute": 540,
         "window_close_minute": 1200, "offer_windows": 1, "showup_working_days": 5,
         "stoplist_working_days": 10, "removal_on_annulment": 2, "docs_working_days": 5,
         "docs_calendar_days": 10, "private_min_age_years": 3, "interleave_general_per_first": 0,
         "twins_together": True}])


def downgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('uq_referrals_live_seat', sqlite_where=sa.text("status IN ('issued', 'admitted')"), postgresql_where=sa.text("status IN ('issued', 'admitted')"))
        batch_op.drop_index('uq_referrals_live_application', sqlite_where=sa.text("status IN ('issued', 'admitted')"), postgresql_where=sa.text("status IN ('issued', 'admitted')"))
        batch_op.drop_index('uq_referrals_issued_child', sqlite_where=sa.text("status = 'issued'"), postgresql_where=sa.text("status = 'issued'"))
        batch_op.drop_index('ix_referrals_showup')
        batch_op.drop_index('ix_referrals_docs')

    op.drop_table('referrals')
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_index('uq_offers_open_seat', sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
        batch_op.drop_index('uq_offers_open_application', sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
        batch_op.drop_index('ix_offers_status_expires')

    op.drop_table('offers')
    with op.batch_alter_table('seats', schema=None) as batch_op:
        batch_op.drop_index('ix_seats_status_queue')
        batch_op.drop_index('ix_seats_kindergarten')

    op.drop_table('seats')
    op.drop_table('queue_looks')
    op.drop_table('groups')
    with op.batch_alter_table('application_preferences', schema=None) as batch_op:
        batch_op.drop_index('ix_application_preferences_kg')

    op.drop_table('application_preferences')
    with op.batch_alter_table('kindergartens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kindergartens_district_id'))

    op.drop_table('kindergartens')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index('ix_applications_twin_group')
        batch_op.drop_index('ix_applications_stoplist')
        batch_op.drop_index('ix_applications_queue')
        batch_op.drop_index('ix_applications_child_iin')

    op.drop_table('applications')
    op.drop_table('districts')
    op.drop_table('rule_profiles')
    op.drop_table('queue_states')
    with op.batch_alter_table('queue_events', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_events_queue_at')

    op.drop_table('queue_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')
        batch_op.drop_index(batch_op.f('ix_outbox_application_id'))

    op.drop_table('outbox')
    op.drop_table('calendar_days')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entity')

    op.drop_table('audit_log')
