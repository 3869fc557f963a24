"""PostgreSQL: extended statistics on bookings (page_slug, event_type_id)

An event type belongs to one page, so the two columns are fully dependent; without this the
planner multiplies their selectivities, underestimates an event type's bookings a hundredfold and
reads the owner console's stream booking by booking instead of walking it newest first.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE STATISTICS IF NOT EXISTS st_bookings_page_event_type (dependencies, ndistinct) "
               "ON page_slug, event_type_id FROM bookings")
    op.execute("ANALYZE bookings")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP STATISTICS IF EXISTS st_bookings_page_event_type")
