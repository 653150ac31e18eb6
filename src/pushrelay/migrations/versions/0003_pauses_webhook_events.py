"""Paused apps (configuration broken), durable webhook events, and an index that tells in one
probe whether a notification still has open deliveries.

Revision ID: 0003_pauses_webhook_events
Revises: 0002_outbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_pauses_webhook_events"
down_revision = "0002_outbox"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "app_pauses",
        sa.Column("app", sa.String(200), primary_key=True),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("platform", sa.String(16), nullable=True),
        sa.Column("paused_at", sa.DateTime(), nullable=False),
        sa.Column("paused_by", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
    )
    op.create_index("ix_webhook_events_next", "webhook_events", ["next_attempt_at"])
    op.create_index("ix_webhook_events_created", "webhook_events", ["created_at"])
    op.create_index(
        "ix_outbox_deliveries_notification_state", "outbox_deliveries", ["notification_id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_deliveries_notification_state", table_name="outbox_deliveries")
    op.drop_index("ix_webhook_events_created", table_name="webhook_events")
    op.drop_index("ix_webhook_events_next", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("app_pauses")
