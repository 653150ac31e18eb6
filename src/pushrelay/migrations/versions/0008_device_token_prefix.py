"""An index for searching devices by token prefix (the console) with a million devices.

Revision ID: 0008_device_token_prefix
Revises: 0007_local_time
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_device_token_prefix"
down_revision = "0007_local_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the expression of pushrelay.registry.models.token_prefix, written out so this file stays as is;
    # byte order on PostgreSQL whatever the database's collation, so that a range is a prefix
    collate = ' COLLATE "C"' if op.get_bind().dialect.name == "postgresql" else ""
    op.create_index(
        "ix_devices_app_token_prefix", "devices", ["app", sa.text(f"(substr(token, 1, 64){collate})")]
    )


def downgrade() -> None:
    op.drop_index("ix_devices_app_token_prefix", table_name="devices")
