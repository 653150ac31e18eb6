"""Workers and their heartbeats (short leases renewed while held).

Revision ID: 0006_outbox_workers
Revises: 0005_provider_state
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox_workers"
down_revision = "0005_provider_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox_workers")
