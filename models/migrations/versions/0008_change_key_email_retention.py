"""activity.change_key (indexed look-up of a change's entries, refusals of unknown ids included);
outbox_emails.body_purged_at and the retention sweep's partial index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa
import models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

HAS_CHANGE_KEY = sa.text("change_key IS NOT NULL")
UNPURGED_SENT = sa.text("status = 'sent' AND body_purged_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_key', sa.String(length=80), nullable=True))
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_purged_at', models.base.UTCDateTime(timezone=True), nullable=True))
    # Entries written before this revision: their change key from the JSON details (keys longer
    # than the column are left out; they were refusals of forged messages).
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE activity SET change_key = details->>'change' "
                   "WHERE details->>'change' IS NOT NULL AND length(details->>'change') <= 80")
    else:
        op.execute("UPDATE activity SET change_key = json_extract(details, '$.change') "
                   "WHERE json_type(details, '$.change') = 'text' AND length(json_extract(details, '$.change')) <= 80")
    op.create_index('ix_activity_change_key', 'activity', ['change_key'],
                    postgresql_where=HAS_CHANGE_KEY, sqlite_where=HAS_CHANGE_KEY)
    op.create_index('ix_outbox_emails_unpurged', 'outbox_emails', ['sent_at'],
                    postgresql_where=UNPURGED_SENT, sqlite_where=UNPURGED_SENT)


def downgrade() -> None:
    op.drop_index('ix_outbox_emails_unpurged', table_name='outbox_emails')
    op.drop_index('ix_activity_change_key', table_name='activity')
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_column('body_purged_at')
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_column('change_key')
