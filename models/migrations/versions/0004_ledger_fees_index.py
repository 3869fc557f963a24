"""partial index on ledger_entries for the orphaned-fee sweep

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

CHARGED_FEE = sa.text("kind = 'fee' AND status IN ('pending', 'succeeded')")


def upgrade() -> None:
    op.create_index('ix_ledger_entries_fees', 'ledger_entries', ['updated_at'],
                    postgresql_where=CHARGED_FEE, sqlite_where=CHARGED_FEE)


def downgrade() -> None:
    op.drop_index('ix_ledger_entries_fees', table_name='ledger_entries')
