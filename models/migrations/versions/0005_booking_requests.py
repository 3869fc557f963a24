"""booking_requests: the intake, stored before a request is published

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

import models.base

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

QUEUED = sa.text("state = 'queued'")


def upgrade() -> None:
    op.create_table('booking_requests',
    sa.Column('request_id', sa.String(length=200), nullable=False),
    sa.Column('booking_id', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('price_cents', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('publishes', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_at', models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_booking_requests')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_booking_requests_booking_id'))
    )
    op.create_index('ix_booking_requests_queued', 'booking_requests', ['published_at'],
                    postgresql_where=QUEUED, sqlite_where=QUEUED)


def downgrade() -> None:
    op.drop_index('ix_booking_requests_queued', table_name='booking_requests')
    op.drop_table('booking_requests')
