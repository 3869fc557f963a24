"""partial index on activity for calendar sync outcomes (doctor, the re-sync sweep)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

CALENDAR_SYNC_ENTRY = sa.text("action IN ('calendar.synced', 'calendar.sync_failed')")


def upgrade() -> None:
    op.create_index('ix_activity_calendar_sync', 'activity', ['booking_id', 'id'],
                    postgresql_where=CALENDAR_SYNC_ENTRY, sqlite_where=CALENDAR_SYNC_ENTRY)


def downgrade() -> None:
    op.drop_index('ix_activity_calendar_sync', table_name='activity')
