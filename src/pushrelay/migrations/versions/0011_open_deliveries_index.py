"""PostgreSQL: the (notification_id, state) index of the deliveries narrowed to the open ones.
SQLite: the count triggers of 0009 dropped (SQLite counts the deliveries at each status read).

Since 0009 a status read sums ``outbox_counts`` instead of counting deliveries through that index;
what still reads it asks for open deliveries only (the completion probe, cancel, next due). A
partial index holds only those: a delivery recorded final leaves it instead of getting a new entry.

Revision ID: 0011_open_deliveries_index
Revises: 0010_claimable_deliveries
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_open_deliveries_index"
down_revision = "0010_claimable_deliveries"
branch_labels = None
depends_on = None

# the open states (pushrelay.queue.models.OPEN_SQL), written out so this file stays as is
_OPEN = "state IN ('pending', 'in_flight', 'paused')"


def _bucket(row: str) -> str:
    """What a status reports a delivery under: its outcome once final, else its state (0009)."""
    return f"(CASE WHEN {row}state = 'done' THEN coalesce({row}outcome, 'None') ELSE {row}state END)"


def _sqlite_add(row: str, step: str) -> str:
    """0009's SQLite trigger body, for the downgrade."""
    name = _bucket(f"{row}.")
    return (
        f"INSERT INTO outbox_counts (notification_id, name, n) SELECT {row}.notification_id, {name}, 0 "  # noqa: S608
        f"WHERE NOT EXISTS (SELECT 1 FROM outbox_counts WHERE notification_id = {row}.notification_id "
        f"AND name = {name}); "
        f"UPDATE outbox_counts SET n = n {step} WHERE notification_id = {row}.notification_id "
        f"AND name = {name};"
    )


_SQLITE_TRIGGERS = (
    "CREATE TRIGGER outbox_deliveries_count_insert AFTER INSERT ON outbox_deliveries "
    f"BEGIN {_sqlite_add('NEW', '+ 1')} END",
    "CREATE TRIGGER outbox_deliveries_count_update AFTER UPDATE OF state, outcome ON outbox_deliveries "
    f"WHEN {_bucket('OLD.')} IS NOT {_bucket('NEW.')} "
    f"BEGIN {_sqlite_add('OLD', '- 1')} {_sqlite_add('NEW', '+ 1')} END",
)
_TRIGGER_NAMES = ("outbox_deliveries_count_insert", "outbox_deliveries_count_update")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_deliveries_notification_state", table_name="outbox_deliveries")
        op.create_index(
            "ix_outbox_deliveries_notification_open",
            "outbox_deliveries",
            ["notification_id", "state"],
            postgresql_where=sa.text(_OPEN),
        )
        return
    # SQLite: a row trigger per delivery moved cost ~25 us a delivery end to end (a third more
    # CPU), more than its status reads save: it counts the deliveries again, through the whole
    # (notification_id, state) index, kept
    for name in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DELETE FROM outbox_counts")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_deliveries_notification_open", table_name="outbox_deliveries")
        op.create_index(
            "ix_outbox_deliveries_notification_state", "outbox_deliveries", ["notification_id", "state"]
        )
        return
    for trigger in _SQLITE_TRIGGERS:
        op.execute(trigger)
    op.execute(
        "INSERT INTO outbox_counts (notification_id, name, n) "  # noqa: S608
        f"SELECT notification_id, {_bucket('')}, count(*) FROM outbox_deliveries GROUP BY 1, 2"
    )
