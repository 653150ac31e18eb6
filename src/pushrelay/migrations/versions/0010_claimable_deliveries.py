"""A partial index of the deliveries a claim can take, in the order it takes them.

The claim asks for ``state IN ('pending', 'in_flight') ... ORDER BY next_attempt_at LIMIT n``. The
(state, next_attempt_at) index cannot give that order for two states, so PostgreSQL read every due
delivery and sorted them for each claim of 500: at a million pending deliveries ~0.8 s a claim, and
the reason the database's CPU per delivery grew with the size of a send. Through this index a
claim reads its n rows in order and stops.

Revision ID: 0010_claimable_deliveries
Revises: 0009_outbox_counts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_claimable_deliveries"
down_revision = "0009_outbox_counts"
branch_labels = None
depends_on = None

# the text of pushrelay.queue.models.CLAIMABLE, written out so this file stays as is
_WHERE = sa.text("state IN ('pending', 'in_flight')")


def upgrade() -> None:
    # PostgreSQL only: SQLite already reads the (state, next_attempt_at) index one state after the
    # other, each in order, and stops at the limit
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_outbox_deliveries_claimable",
            "outbox_deliveries",
            ["next_attempt_at"],
            postgresql_where=_WHERE,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_deliveries_claimable", table_name="outbox_deliveries")
