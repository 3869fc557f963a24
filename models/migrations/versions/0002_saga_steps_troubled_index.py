"""partial index on saga_steps for the orphan-meeting sweep

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TROUBLED = sa.text("step = 'conferencing' AND (attempts > 1 OR outcome = 'failed')")


def upgrade() -> None:
    op.create_index('ix_saga_steps_conferencing_troubled', 'saga_steps', ['updated_at'],
                    postgresql_where=TROUBLED, sqlite_where=TROUBLED)


def downgrade() -> None:
    op.drop_index('ix_saga_steps_conferencing_troubled', table_name='saga_steps')
