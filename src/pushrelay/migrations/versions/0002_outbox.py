"""The outbox (notifications, deliveries), API keys and shared APNs provider tokens.

Revision ID: 0002_outbox
Revises: 0001_registry
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_outbox"
down_revision = "0001_registry"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("send_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("cursor", sa.String(200), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.UniqueConstraint("app", "idempotency_key", name="uq_outbox_notifications_idempotency"),
    )
    op.create_index("ix_outbox_notifications_state_due", "outbox_notifications", ["state", "due_at"])
    op.create_index("ix_outbox_notifications_created", "outbox_notifications", ["created_at"])
    op.create_index("ix_outbox_notifications_app_created", "outbox_notifications", ["app", "created_at"])
    op.create_table(
        "outbox_deliveries",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "notification_id",
            sa.String(36),
            sa.ForeignKey("outbox_notifications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("environment", sa.String(16), nullable=True),
        sa.Column("token", sa.String(2048), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("apns_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("token_invalid_since", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("notification_id", "token", name="uq_outbox_deliveries_notification_token"),
    )
    op.create_index("ix_outbox_deliveries_state_next", "outbox_deliveries", ["state", "next_attempt_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("apps", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "provider_tokens",
        sa.Column("team_id", sa.String(10), primary_key=True),
        sa.Column("key_id", sa.String(10), primary_key=True),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("minted_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_tokens")
    op.drop_table("api_keys")
    op.drop_index("ix_outbox_deliveries_state_next", table_name="outbox_deliveries")
    op.drop_table("outbox_deliveries")
    op.drop_index("ix_outbox_notifications_app_created", table_name="outbox_notifications")
    op.drop_index("ix_outbox_notifications_created", table_name="outbox_notifications")
    op.drop_index("ix_outbox_notifications_state_due", table_name="outbox_notifications")
    op.drop_table("outbox_notifications")
