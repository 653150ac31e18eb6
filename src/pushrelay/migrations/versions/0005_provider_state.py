"""Provider state shared by every process (FCM access tokens, per-target Retry-After deadlines),
and the surface each notification came from (api, cli, library).

Revision ID: 0005_provider_state
Revises: 0004_fourd_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_provider_state"
down_revision = "0004_fourd_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_access_tokens",
        sa.Column("account", sa.String(320), primary_key=True),
        sa.Column("token_uri", sa.String(500), primary_key=True),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("refresh_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "provider_deferrals",
        sa.Column("app", sa.String(200), primary_key=True),
        sa.Column("platform", sa.String(16), primary_key=True),
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
    )
    with op.batch_alter_table("outbox_notifications") as batch:
        batch.add_column(sa.Column("surface", sa.String(16), nullable=False, server_default="api"))


def downgrade() -> None:
    with op.batch_alter_table("outbox_notifications") as batch:
        batch.drop_column("surface")
    op.drop_table("provider_deferrals")
    op.drop_table("provider_access_tokens")
