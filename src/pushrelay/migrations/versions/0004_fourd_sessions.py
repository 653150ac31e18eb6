"""4D live sync: watched folders, the session files seen; the device's time zone.

Revision ID: 0004_fourd_sessions
Revises: 0003_pauses_webhook_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pushrelay.db import UTCDateTime

revision = "0004_fourd_sessions"
down_revision = "0003_pauses_webhook_events"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fourd_folders",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("folder", sa.String(1024), nullable=False),
        sa.Column("folder_hash", sa.String(64), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fourd_folders")),
        sa.UniqueConstraint("app", "folder_hash", name=op.f("uq_fourd_folders_app_folder_hash")),
    )
    op.create_table(
        "fourd_sessions",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("error", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fourd_sessions")),
        sa.UniqueConstraint("app", "path", name=op.f("uq_fourd_sessions_app_path")),
    )
    op.create_index("ix_fourd_sessions_app_token_hash", "fourd_sessions", ["app", "token_hash"])
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("time_zone")
    op.drop_index("ix_fourd_sessions_app_token_hash", table_name="fourd_sessions")
    op.drop_table("fourd_sessions")
    op.drop_table("fourd_folders")
