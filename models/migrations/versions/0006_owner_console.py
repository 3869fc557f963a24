"""owner console: owner logins (argon2 hash, site admin flag) and the stream's indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('owners') as batch:
        batch.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('site_admin', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index('ix_activity_at_id', 'activity', ['at', 'id'])
    op.create_index('ix_activity_booking_at', 'activity', ['booking_id', 'at', 'id'])
    op.create_index('ix_activity_action_at', 'activity', ['action', 'at', 'id'])
    op.create_index('ix_bookings_page_event_type', 'bookings', ['page_slug', 'event_type_id'])
    op.create_index('ix_bookings_customer_email_lower', 'bookings', [sa.text('lower(customer_email)')])


def downgrade() -> None:
    op.drop_index('ix_bookings_customer_email_lower', table_name='bookings')
    op.drop_index('ix_bookings_page_event_type', table_name='bookings')
    op.drop_index('ix_activity_action_at', table_name='activity')
    op.drop_index('ix_activity_booking_at', table_name='activity')
    op.drop_index('ix_activity_at_id', table_name='activity')
    with op.batch_alter_table('owners') as batch:
        batch.drop_column('site_admin')
        batch.drop_column('password_hash')
