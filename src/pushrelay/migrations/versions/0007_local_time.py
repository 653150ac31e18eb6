"""Local-time delivery: a notification's ``deliver_at_local`` and ``urgent``, a delivery's
``scheduled_for``.

Revision ID: 0007_local_time
Revises: 0006_outbox_workers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_local_time"
down_revision = "0006_outbox_workers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_notifications") as batch:
        batch.add_column(sa.Column("deliver_at_local", sa.String(5), nullable=True))
        batch.add_column(sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("outbox_deliveries") as batch:
        batch.add_column(sa.Column("scheduled_for", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_deliveries") as batch:
        batch.drop_column("scheduled_for")
    with op.batch_alter_table("outbox_notifications") as batch:
        batch.drop_column("urgent")
        batch.drop_column("deliver_at_local")
