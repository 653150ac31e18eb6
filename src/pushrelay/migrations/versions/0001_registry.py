"""The device registry.

Revision ID: 0001_registry
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pushrelay.db import UTCDateTime

revision: str = "0001_registry"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("platform", sa.String(10), nullable=False),
        sa.Column("token", sa.String(2048), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(11), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("email_norm", sa.String(320), nullable=True),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("app_version", sa.String(64), nullable=True),
        sa.Column("os", sa.String(32), nullable=True),
        sa.Column("os_version", sa.String(64), nullable=True),
        sa.Column("device_model", sa.String(128), nullable=True),
        sa.Column("device_id", sa.String(128), nullable=True),
        sa.Column("simulator", sa.Boolean(), nullable=False),
        sa.Column("web_p256dh", sa.String(128), nullable=True),
        sa.Column("web_auth", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("retired_reason", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("app", "token_hash", name=op.f("uq_devices_app_token_hash")),
        sa.CheckConstraint("platform IN ('ios', 'android', 'web')", name=op.f("ck_devices_platform")),
        sa.CheckConstraint(
            "environment IS NULL OR environment IN ('production', 'development')",
            name=op.f("ck_devices_environment"),
        ),
    )
    op.create_index("ix_devices_app_email_norm", "devices", ["app", "email_norm"])
    op.create_index("ix_devices_app_id", "devices", ["app", "id"])


def downgrade() -> None:
    op.drop_index("ix_devices_app_id", table_name="devices")
    op.drop_index("ix_devices_app_email_norm", table_name="devices")
    op.drop_table("devices")
